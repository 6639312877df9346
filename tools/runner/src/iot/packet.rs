//! MQTT on the wire, as far as the front door needs it: splitting a byte stream into
//! packets (forwarded unchanged), reading the few packets IoT Core acts on (CONNECT,
//! CONNACK, PUBLISH, DISCONNECT) in MQTT 3.1.1 or 5, and encoding the QoS 0 PUBLISH the
//! runner delivers to one client only. The codec is rumqttc's.

use bytes::{Bytes, BytesMut};
use rumqttc::v5::mqttbytes::v5;

/// Largest packet accepted (IoT Core's limit is 128 KiB; telemetry batches stay below).
pub const MAX_PACKET: usize = 1024 * 1024;

/// The protocol a connection speaks, from its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V4,
    V5,
}

/// What the front door learns from one packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Connect {
        version: Version,
        client_id: String,
        username: Option<String>,
    },
    ConnAck {
        accepted: bool,
    },
    Publish {
        /// Empty when an MQTT 5 topic alias stands for it.
        topic: String,
        topic_alias: Option<u16>,
        payload: Bytes,
    },
    Disconnect,
    Other,
}

/// Splits the next whole packet off `buffer`, if one is there.
pub fn next_frame(buffer: &mut BytesMut) -> Result<Option<BytesMut>, String> {
    match rumqttc::mqttbytes::check(buffer.iter(), MAX_PACKET) {
        Ok(header) => Ok(Some(buffer.split_to(header.frame_length()))),
        Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(format!("not MQTT: {e:?}")),
    }
}

/// The protocol level of a CONNECT frame (byte after the protocol name).
pub fn connect_version(frame: &[u8]) -> Option<Version> {
    let header_len = 1 + frame[1..].iter().position(|b| b & 0x80 == 0)? + 1;
    let name_len = u16::from_be_bytes([*frame.get(header_len)?, *frame.get(header_len + 1)?]);
    match frame.get(header_len + 2 + usize::from(name_len))? {
        3 | 4 => Some(Version::V4),
        5 => Some(Version::V5),
        _ => None,
    }
}

/// Reads what matters of one frame. `version` is None until the CONNECT has been seen.
pub fn inspect(version: Option<Version>, frame: &[u8]) -> Result<Seen, String> {
    let packet_type = frame.first().map(|b| b >> 4).unwrap_or(0);
    let version = match (packet_type, version) {
        (1, _) => connect_version(frame).ok_or("CONNECT with an unknown protocol level")?,
        (_, Some(v)) => v,
        (_, None) => return Err("the first packet must be CONNECT".into()),
    };
    if !matches!(packet_type, 1 | 2 | 3 | 14) {
        return Ok(Seen::Other);
    }
    let mut bytes = BytesMut::from(frame);
    match version {
        Version::V4 => {
            let packet =
                rumqttc::Packet::read(&mut bytes, MAX_PACKET).map_err(|e| format!("{e:?}"))?;
            Ok(match packet {
                rumqttc::Packet::Connect(c) => Seen::Connect {
                    version,
                    client_id: c.client_id,
                    username: c.login.map(|l| l.username).filter(|u| !u.is_empty()),
                },
                rumqttc::Packet::ConnAck(ack) => Seen::ConnAck {
                    accepted: ack.code == rumqttc::ConnectReturnCode::Success,
                },
                rumqttc::Packet::Publish(p) => Seen::Publish {
                    topic: p.topic,
                    topic_alias: None,
                    payload: p.payload,
                },
                rumqttc::Packet::Disconnect => Seen::Disconnect,
                _ => Seen::Other,
            })
        }
        Version::V5 => {
            let packet = v5::Packet::read(&mut bytes, Some(MAX_PACKET as u32))
                .map_err(|e| format!("{e:?}"))?;
            Ok(match packet {
                v5::Packet::Connect(c, _, login) => Seen::Connect {
                    version,
                    client_id: c.client_id,
                    username: login.map(|l| l.username).filter(|u| !u.is_empty()),
                },
                v5::Packet::ConnAck(ack) => Seen::ConnAck {
                    accepted: ack.code == v5::ConnectReturnCode::Success,
                },
                v5::Packet::Publish(p) => Seen::Publish {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    topic_alias: p.properties.and_then(|props| props.topic_alias),
                    payload: p.payload,
                },
                v5::Packet::Disconnect(_) => Seen::Disconnect,
                _ => Seen::Other,
            })
        }
    }
}

/// A QoS 0 PUBLISH of `payload` to `topic`, for one connection.
pub fn publish_frame(version: Version, topic: &str, payload: &[u8]) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    match version {
        Version::V4 => {
            rumqttc::Publish::new(topic, rumqttc::QoS::AtMostOnce, payload.to_vec())
                .write(&mut out)
                .map_err(|e| format!("{e:?}"))?;
        }
        Version::V5 => {
            v5::Publish {
                dup: false,
                qos: rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                retain: false,
                topic: Bytes::copy_from_slice(topic.as_bytes()),
                pkid: 0,
                payload: Bytes::copy_from_slice(payload),
                properties: None,
            }
            .write(&mut out)
            .map_err(|e| format!("{e:?}"))?;
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_connect(client_id: &str, username: Option<&str>) -> BytesMut {
        let mut connect = rumqttc::Connect::new(client_id);
        if let Some(u) = username {
            connect.set_login(u, "");
        }
        let mut out = BytesMut::new();
        connect.write(&mut out).unwrap();
        out
    }

    #[test]
    fn frames_split_at_packet_boundaries_and_wait_for_the_rest() {
        let mut stream = v4_connect("car-1", Some("cert-1"));
        let publish = publish_frame(Version::V4, "fleet/car-1/telemetry", b"{}").unwrap();
        stream.extend_from_slice(&publish);
        stream.extend_from_slice(&publish[..3]);
        let first = next_frame(&mut stream).unwrap().unwrap();
        assert_eq!(
            inspect(None, &first).unwrap(),
            Seen::Connect {
                version: Version::V4,
                client_id: "car-1".into(),
                username: Some("cert-1".into())
            }
        );
        let second = next_frame(&mut stream).unwrap().unwrap();
        assert_eq!(
            inspect(Some(Version::V4), &second).unwrap(),
            Seen::Publish {
                topic: "fleet/car-1/telemetry".into(),
                topic_alias: None,
                payload: Bytes::from_static(b"{}")
            }
        );
        assert_eq!(
            next_frame(&mut stream).unwrap(),
            None,
            "3 bytes are not a packet"
        );
        assert_eq!(stream.len(), 3);
    }

    #[test]
    fn mqtt5_connects_and_publishes_are_read_too() {
        let mut connect = BytesMut::new();
        v5::Connect {
            keep_alive: 30,
            client_id: "car-5".into(),
            clean_start: true,
            properties: None,
        }
        .write(&None, &None, &mut connect)
        .unwrap();
        assert_eq!(connect_version(&connect), Some(Version::V5));
        assert!(matches!(
            inspect(None, &connect).unwrap(),
            Seen::Connect { version: Version::V5, ref client_id, username: None } if client_id == "car-5"
        ));
        let frame = publish_frame(Version::V5, "$aws/certificates/create/json", b"{}").unwrap();
        assert!(matches!(
            inspect(Some(Version::V5), &frame).unwrap(),
            Seen::Publish { ref topic, .. } if topic == "$aws/certificates/create/json"
        ));
    }

    #[test]
    fn the_first_packet_must_be_a_connect() {
        let frame = publish_frame(Version::V4, "a", b"x").unwrap();
        assert!(inspect(None, &frame).is_err());
        let mut garbage = BytesMut::from(&[0xff_u8, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
        assert!(next_frame(&mut garbage).is_err());
    }
}

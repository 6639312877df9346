-- Readings archived more than once (the same record_id): a device's retry, or an ingest
-- retry of a partly failed PutRecords. Each is counted once everywhere else.
SELECT device_id,
       record_id,
       count(*) AS copies,
       min(received_at) AS first_received,
       max(received_at) AS last_received
FROM telemetry
GROUP BY device_id, record_id
HAVING count(*) > 1
ORDER BY copies DESC, device_id

-- Readings that reached IoT Core in a later hour than they were taken (a device that
-- buffered while offline), per device: how many, and the newest such reading. Both times
-- are RFC 3339 UTC, so their first 13 characters are the hour.
SELECT device_id,
       count(DISTINCT record_id) AS late_readings,
       max("timestamp") AS newest_late_reading
FROM telemetry
WHERE substr(received_at, 1, 13) > substr("timestamp", 1, 13)
GROUP BY device_id
ORDER BY late_readings DESC, device_id

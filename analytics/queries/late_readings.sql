-- Readings that reached IoT Core more than 300 seconds after they were taken (the stream
-- processor's TIMELY_SECONDS; a unit test keeps the numbers equal), per device: how many,
-- the longest delay in seconds, and the newest such reading. Both times are RFC 3339 UTC,
-- read as timestamps the same way in Athena and DuckDB; the delay is taken in
-- milliseconds, where both engines' date_diff agree to the millisecond.
SELECT device_id,
       count(*) AS late_readings,
       max(delay_ms) / 1000.0 AS longest_delay_seconds,
       max("timestamp") AS newest_late_reading
FROM (
    SELECT DISTINCT record_id, device_id, "timestamp",
           date_diff('millisecond',
                     CAST(replace(replace("timestamp", 'T', ' '), 'Z', '') AS TIMESTAMP),
                     CAST(replace(replace(received_at, 'T', ' '), 'Z', '') AS TIMESTAMP)) AS delay_ms
    FROM telemetry
) AS readings
WHERE delay_ms > 300 * 1000
GROUP BY device_id
ORDER BY late_readings DESC, device_id

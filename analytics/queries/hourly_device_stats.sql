-- Hourly statistics per device, recomputed from the archive: the figures the Summaries
-- table keeps (readings, min, max and mean temperature), each reading counted once
-- however often it was archived. The hour is the reading's own, in UTC.
SELECT device_id,
       substr("timestamp", 1, 13) AS hour,
       count(*) AS record_count,
       min(temperature) AS min_temperature,
       max(temperature) AS max_temperature,
       avg(temperature) AS avg_temperature
FROM (
    SELECT DISTINCT record_id, device_id, "timestamp", temperature
    FROM telemetry
) AS readings
GROUP BY device_id, substr("timestamp", 1, 13)
ORDER BY device_id, hour

-- The fleet by day: devices that reported, readings, and temperature across the fleet,
-- each reading counted once however often it was archived.
SELECT substr("timestamp", 1, 10) AS day,
       count(DISTINCT device_id) AS devices,
       count(*) AS readings,
       min(temperature) AS min_temperature,
       max(temperature) AS max_temperature,
       avg(temperature) AS avg_temperature
FROM (
    SELECT DISTINCT record_id, device_id, "timestamp", temperature
    FROM telemetry
) AS readings
GROUP BY substr("timestamp", 1, 10)
ORDER BY day

-- Anomalies of the fixed bounds per device and hour: readings whose temperature,
-- humidity or pressure lies outside the stream processor's bounds (the same numbers; a
-- unit test keeps them equal). Anomalies against a device's own history (z-score) need
-- its running statistics and are counted by the processor alone.
SELECT device_id,
       substr("timestamp", 1, 13) AS hour,
       count(*) AS readings,
       sum(CASE WHEN temperature < -40 OR temperature > 85 THEN 1 ELSE 0 END) AS temperature,
       sum(CASE WHEN humidity < 1 OR humidity > 99 THEN 1 ELSE 0 END) AS humidity,
       sum(CASE WHEN pressure < 870 OR pressure > 1085 THEN 1 ELSE 0 END) AS pressure
FROM (
    SELECT DISTINCT record_id, device_id, "timestamp", temperature, humidity, pressure
    FROM telemetry
) AS readings
WHERE temperature < -40 OR temperature > 85
   OR humidity < 1 OR humidity > 99
   OR pressure < 870 OR pressure > 1085
GROUP BY device_id, substr("timestamp", 1, 13)
ORDER BY device_id, hour

-- Firmware versions reported over time: per day, how many devices reported each version
-- (from the readings' metadata; readings without it are left out).
SELECT substr("timestamp", 1, 10) AS day,
       metadata.version AS firmware_version,
       count(DISTINCT device_id) AS devices
FROM telemetry
WHERE metadata.version IS NOT NULL
GROUP BY substr("timestamp", 1, 10), metadata.version
ORDER BY day, firmware_version

-- Devices whose newest reading is older than the cutoff (parameter 1, an RFC 3339 UTC
-- time such as 2026-12-07T06:00:00Z): readings are stored in that form, so text order
-- is time order.
SELECT device_id,
       max("timestamp") AS last_reading
FROM telemetry
GROUP BY device_id
HAVING max("timestamp") < ?
ORDER BY last_reading

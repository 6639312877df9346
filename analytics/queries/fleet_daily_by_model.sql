-- The fleet by day and model: devices that reported, readings, and temperature, each
-- reading counted once. Models come from the table `devices`, the Registry as
-- `fleetctl archive devices` last wrote it; readings of a device it does not list are
-- under the model `unregistered`.
SELECT substr(r."timestamp", 1, 10) AS day,
       coalesce(d.model, 'unregistered') AS model,
       count(DISTINCT r.device_id) AS devices,
       count(*) AS readings,
       min(r.temperature) AS min_temperature,
       max(r.temperature) AS max_temperature,
       avg(r.temperature) AS avg_temperature
FROM (
    SELECT DISTINCT record_id, device_id, "timestamp", temperature
    FROM telemetry
) AS r
LEFT JOIN devices AS d ON d.thing_name = r.device_id
GROUP BY substr(r."timestamp", 1, 10), coalesce(d.model, 'unregistered')
ORDER BY day, model

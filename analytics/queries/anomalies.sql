-- Anomalies per device and hour, as the stream processor raises them (its AnomalyRules;
-- a unit test keeps the numbers equal): a metric outside its fixed bounds, or else more
-- than 3 sample standard deviations from the mean of every earlier reading of the device,
-- once there are 30 of them (no spread yet and a different value: infinitely unusual).
-- Each reading counts once, at its first arrival, in the order the stream delivered it:
-- by arrival time, then by the device's own timestamp. The processor counts one anomaly
-- per metric, and so does `anomalies`.
WITH readings AS (
    SELECT device_id, "timestamp", received_at, temperature, humidity, pressure,
           row_number() OVER (PARTITION BY record_id ORDER BY received_at) AS copy
    FROM telemetry
),
history AS (
    SELECT device_id, "timestamp", temperature, humidity, pressure,
           count(*) OVER (PARTITION BY device_id ORDER BY received_at, "timestamp"
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS earlier,
           avg(temperature) OVER (PARTITION BY device_id ORDER BY received_at, "timestamp"
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS t_mean,
           stddev_samp(temperature) OVER (PARTITION BY device_id ORDER BY received_at, "timestamp"
                                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS t_sd,
           avg(humidity) OVER (PARTITION BY device_id ORDER BY received_at, "timestamp"
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS h_mean,
           stddev_samp(humidity) OVER (PARTITION BY device_id ORDER BY received_at, "timestamp"
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS h_sd,
           avg(pressure) OVER (PARTITION BY device_id ORDER BY received_at, "timestamp"
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS p_mean,
           stddev_samp(pressure) OVER (PARTITION BY device_id ORDER BY received_at, "timestamp"
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS p_sd
    FROM readings
    WHERE copy = 1
),
judged AS (
    SELECT device_id,
           substr("timestamp", 1, 13) AS hour,
           CASE WHEN temperature < -40 OR temperature > 85 THEN 'bounds'
                WHEN earlier >= 30 AND (CASE WHEN t_sd > 2.220446049250313e-16 THEN abs(temperature - t_mean) / t_sd > 3
                                             ELSE abs(temperature - t_mean) > 2.220446049250313e-16 END) THEN 'zscore'
           END AS temperature_kind,
           CASE WHEN humidity < 1 OR humidity > 99 THEN 'bounds'
                WHEN earlier >= 30 AND (CASE WHEN h_sd > 2.220446049250313e-16 THEN abs(humidity - h_mean) / h_sd > 3
                                             ELSE abs(humidity - h_mean) > 2.220446049250313e-16 END) THEN 'zscore'
           END AS humidity_kind,
           CASE WHEN pressure < 870 OR pressure > 1085 THEN 'bounds'
                WHEN earlier >= 30 AND (CASE WHEN p_sd > 2.220446049250313e-16 THEN abs(pressure - p_mean) / p_sd > 3
                                             ELSE abs(pressure - p_mean) > 2.220446049250313e-16 END) THEN 'zscore'
           END AS pressure_kind
    FROM history
)
SELECT device_id,
       hour,
       count(*) AS readings,
       sum(CASE WHEN temperature_kind = 'bounds' THEN 1 ELSE 0 END)
         + sum(CASE WHEN humidity_kind = 'bounds' THEN 1 ELSE 0 END)
         + sum(CASE WHEN pressure_kind = 'bounds' THEN 1 ELSE 0 END) AS bounds,
       sum(CASE WHEN temperature_kind = 'zscore' THEN 1 ELSE 0 END)
         + sum(CASE WHEN humidity_kind = 'zscore' THEN 1 ELSE 0 END)
         + sum(CASE WHEN pressure_kind = 'zscore' THEN 1 ELSE 0 END) AS zscore,
       sum(CASE WHEN temperature_kind IS NOT NULL THEN 1 ELSE 0 END)
         + sum(CASE WHEN humidity_kind IS NOT NULL THEN 1 ELSE 0 END)
         + sum(CASE WHEN pressure_kind IS NOT NULL THEN 1 ELSE 0 END) AS anomalies
FROM judged
GROUP BY device_id, hour
HAVING sum(CASE WHEN temperature_kind IS NOT NULL OR humidity_kind IS NOT NULL
                     OR pressure_kind IS NOT NULL THEN 1 ELSE 0 END) > 0
ORDER BY device_id, hour

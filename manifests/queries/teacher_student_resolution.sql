-- The same split along resolution: teacher = both images high resolution, student = any low one.
-- Select the rows themselves (drop the GROUP BY) to hand them to training.
-- Views: pairs.
SELECT CASE WHEN resolution_bin_a = 'high' AND resolution_bin_b = 'high' THEN 'teacher'
            WHEN 'low' IN (resolution_bin_a, resolution_bin_b) THEN 'student' END AS role,
       kind, count(*) AS pairs, round(avg(cos), 4) AS mean_cos
FROM pairs
WHERE resolution_bin_a IS NOT NULL AND resolution_bin_b IS NOT NULL
GROUP BY 1, 2
HAVING role IS NOT NULL
ORDER BY role, kind;

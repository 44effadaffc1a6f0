-- DDL-style teacher / student pair sets along pose: teacher = positive pairs with both faces frontal,
-- student = positive pairs with at least one profile face; negatives split the same way.
-- Views: pairs.
SELECT CASE WHEN pose_bin_a = 'frontal' AND pose_bin_b = 'frontal' THEN 'teacher'
            WHEN 'profile' IN (pose_bin_a, pose_bin_b) THEN 'student' END AS role,
       kind, count(*) AS pairs, round(avg(cos), 4) AS mean_cos
FROM pairs
WHERE pose_bin_a IS NOT NULL AND pose_bin_b IS NOT NULL
GROUP BY 1, 2
HAVING role IS NOT NULL
ORDER BY role, kind;

-- Bias report: FPR of each group at one global (CIFP unified) threshold = mean instance FPR of its
-- samples; fpr_ratio = group FPR / overall FPR (1 = fair). Groups come from an attribute column
-- (e.g. race) or k-means clusters of class centres; the same table is RUN/groups.parquet.
-- Views: samples.
WITH overall AS (SELECT avg(instance_fpr) AS fpr FROM samples WHERE "group" IS NOT NULL)
SELECT "group",
       count(*) AS samples,
       count(DISTINCT label) AS classes,
       avg(instance_fpr) AS fpr,
       avg(instance_fpr) / nullif((SELECT fpr FROM overall), 0) AS fpr_ratio
FROM samples
WHERE "group" IS NOT NULL
GROUP BY "group"
ORDER BY fpr DESC;

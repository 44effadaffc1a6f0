-- Suspected mislabels per class, worst classes first, with the label their samples look like.
-- Views: samples.
SELECT label,
       count(*) AS samples,
       count(*) FILTER (WHERE suspect_mislabel) AS suspects,
       round(100.0 * count(*) FILTER (WHERE suspect_mislabel) / count(*), 1) AS suspect_pct,
       mode(suspected_label) FILTER (WHERE suspect_mislabel) AS most_suspected_label,
       round(avg(knn_agreement), 3) AS mean_knn_agreement
FROM samples
GROUP BY label
HAVING count(*) FILTER (WHERE suspect_mislabel) > 0
ORDER BY suspects DESC, label
LIMIT 100;

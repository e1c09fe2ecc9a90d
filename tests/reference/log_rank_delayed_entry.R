# Known answer for the log-rank test with delayed entry (left truncation).
#
# survdiff() does not take Surv(start, stop); the log-rank test is the score test of a Cox
# model with one binary covariate, and without tied event times the Cox score test's
# variance equals the log-rank (hypergeometric) variance. So: mgus2, death by sex, the same
# synthetic entries as competing_risks_mgus2.R, exit times made distinct by adding id / 1e5.
library(survival)
d <- mgus2
d$entry <- ifelse(d$id %% 3 == 0, pmin(d$futime - 0.5, d$id %% 37), 0)
d$exit <- d$futime + d$id / 1e5
stopifnot(all(d$entry < d$exit))
fit <- coxph(Surv(entry, exit, death) ~ I(sex == "M"), data = d, ties = "breslow")
score <- unname(fit$score)
cat("score_chisq", sprintf("%.15g", score), "\n")
cat("p_value", sprintf("%.15g", pchisq(score, 1, lower.tail = FALSE)), "\n")
# Without delayed entry, survdiff agrees with the same Cox score test (no ties).
plain <- survdiff(Surv(exit, death) ~ sex, data = d)
cat("survdiff_chisq_no_entry", sprintf("%.15g", plain$chisq), "\n")
write.csv(data.frame(id = d$id, entry = d$entry, exit = sprintf("%.5f", d$exit), death = d$death,
                     male = as.integer(d$sex == "M")), "log_rank_delayed_entry.csv", row.names = FALSE)

# Known answers for reports/statistics/survival.py and competing_risks.py.
#
# Regenerate (from the repository root; needs R with the survival and jsonlite packages):
#   cd tests/reference && R --vanilla -q -f competing_risks_mgus2.R > competing_risks_mgus2.Rout
# Writes mgus2.csv (the data the Python tests read) and competing_risks_mgus2.json
# (every number the tests assert), and prints the same fits to the console (.Rout).
#
# Data: survival::mgus2 (Kyle et al., NEJM 2002;346:564), 1384 subjects, times in months
# (the Python side treats them as days; only the numbers matter).  The competing-risks set-up
# is the one in Therneau's vignette "Multi-state models and competing risks":
#   etime = time to progression (PCM) if it happened, else time to death or last follow-up;
#   event = "pcm" (progression first), "death" (death without progression), "censor".
#
# Delayed entry (left truncation) is synthetic and deterministic: every third subject
# (id %% 3 == 0) enters at min(etime - 0.5, id %% 37) months, everyone else at 0.  The
# entry is strictly less than etime (and so than futime) for every subject.

library(survival)
library(jsonlite)
options(digits = 10, width = 120)
cat("R:", R.version.string, " survival:", format(packageVersion("survival")), "\n")

d <- mgus2
d$etime <- with(d, ifelse(pstat == 0, futime, ptime))
d$status <- with(d, ifelse(pstat == 0, 2 * death, 1))  # 0 censor, 1 pcm, 2 death
d$event <- factor(d$status, 0:2, labels = c("censor", "pcm", "death"))
d$entry <- ifelse(d$id %% 3 == 0, pmin(d$etime - 0.5, d$id %% 37), 0)
stopifnot(all(d$entry >= 0), all(d$entry < d$etime), all(d$etime <= d$futime))
cat("subjects:", nrow(d), " delayed entries:", sum(d$entry > 0), "\n")
print(table(d$event))

write.csv(d[, c("id", "etime", "status", "futime", "death", "entry")], "mgus2.csv", row.names = FALSE)

times <- c(12, 24, 60, 120, 240, 360)

# One state column of a multi-state survfit as a list of full-table columns.
state_table <- function(fit, state) {
  k <- match(state, fit$states)
  list(
    time = fit$time,
    n_risk = fit$n.risk[, 1],
    n_event = fit$n.event[, k],
    n_censor = fit$n.censor,
    pstate = fit$pstate[, k],
    std_err = fit$std.err[, k],
    lower = fit$lower[, k],
    upper = fit$upper[, k]
  )
}

show_state <- function(fit, state, label) {
  cat("\n==", label, "==\n")
  s <- summary(fit, times = times)
  k <- match(state, s$states)
  print(data.frame(time = s$time, n.risk = s$n.risk[, 1], pstate = s$pstate[, k],
                   std.err = s$std.err[, k], lower = s$lower[, k], upper = s$upper[, k]), digits = 10)
}

# 1. Aalen-Johansen, right-censored.
cr <- survfit(Surv(etime, event) ~ 1, data = d)
print(cr)
show_state(cr, "pcm", "PCM (event of interest), death competing")
show_state(cr, "death", "death (event of interest), PCM competing")

# 2. Aalen-Johansen with delayed entry: counting-process form, one row per id.
crd <- survfit(Surv(entry, etime, event) ~ 1, data = d, id = id)
print(crd)
show_state(crd, "pcm", "delayed entry: PCM")
show_state(crd, "death", "delayed entry: death")

# 3. Kaplan-Meier of overall survival (futime, death) with the same delayed entries.
#    No id: one row per subject, so R uses the Greenwood variance (not the robust one).
km <- survfit(Surv(entry, futime, death) ~ 1, data = d)
print(km)
print(summary(km, times = times))
kmq <- quantile(km, 0.5)
km_tab <- list(time = km$time, n_risk = km$n.risk, n_event = km$n.event, n_censor = km$n.censor,
               surv = km$surv, std_err = km$surv * km$std.err, lower = km$lower, upper = km$upper)

# 4. The median's CI where the upper band is not monotone (see survival.py's docstring).
#    30 subjects: deaths at 1..22, 5 censored at 22.5, deaths at 23, 24, 25.
mt <- c(1:22, rep(22.5, 5), 23:25)
me <- c(rep(1, 22), rep(0, 5), rep(1, 3))
mf <- survfit(Surv(mt, me) ~ 1)
cat("\n== median CI with a non-monotone upper band ==\n")
print(mf)
print(summary(mf, times = c(20, 21, 22, 23, 24, 25)))
mq <- quantile(mf, 0.5)
first_cross <- mf$time[which(mf$upper <= 0.5)[1]]
cat("quantile.survfit upper limit:", mq$upper, "  first time the upper band is <= 0.5:", first_cross, "\n")

# 5. Small cases the tests also work out by hand (exact fractions).
#    a) 1 - KM is not the cumulative incidence when there are competing events.
#       (time, status): (1,1) (2,2) (3,1) (4,0) (5,1) (6,2).
ha <- data.frame(time = 1:6, status = c(1, 2, 1, 0, 1, 2))
ha_aj <- survfit(Surv(time, factor(status, 0:2)) ~ 1, data = ha)
ha_km <- survfit(Surv(time, status == 1) ~ 1, data = ha)
cat("\n== small case a: AJ vs 1 - KM ==\n")
print(data.frame(time = ha_aj$time, aj = ha_aj$pstate[, 2], one_minus_km = 1 - ha_km$surv,
                 competing = ha_aj$pstate[, 3], free = ha_aj$pstate[, 1]))
#    b) Delayed entry, an event, a competing event and a censoring at the same time (t = 2),
#       the risk set emptied by events at t = 3 (S = 0), later entries after that.
hb <- data.frame(entry = c(0, 0, 0, 1, 0, 3, 4, 0.5), exit = c(2, 2, 2, 3, 3, 5, 6, 1),
                 status = c(1, 2, 0, 1, 2, 1, 0, 1))
hb_aj <- survfit(Surv(entry, exit, factor(status, 0:2)) ~ 1, data = hb, id = seq_len(nrow(hb)))
hb_km <- survfit(Surv(entry, exit, status != 0) ~ 1, data = hb)
cat("\n== small case b: delayed entry, ties, S reaching 0 ==\n")
print(data.frame(time = hb_aj$time, n.risk = hb_aj$n.risk[, 1], pstate = hb_aj$pstate[, 2],
                 std.err = hb_aj$std.err[, 2], lower = hb_aj$lower[, 2], upper = hb_aj$upper[, 2]))
print(summary(hb_km, censored = TRUE))
#    c) entry == exit: R's Surv() makes the row NA (with a warning) and survfit drops it.
cat("\n== entry == exit ==\n")
print(Surv(c(0, 2, 3), c(1, 2, 5), c(1, 1, 0)))
hc <- survfit(Surv(c(0, 2, 3), c(1, 2, 5), c(1, 1, 0)) ~ 1)
cat("n used:", hc$n, "\n")

out <- list(
  small_a = list(time = ha$time, status = ha$status, aj = state_table(ha_aj, "1"),
                 one_minus_km = 1 - ha_km$surv),
  small_b = list(entry = hb$entry, exit = hb$exit, status = hb$status, aj = state_table(hb_aj, "1"),
                 km_surv = hb_km$surv, km_std_err = hb_km$surv * hb_km$std.err),
  source = paste("survival", format(packageVersion("survival")), "on", R.version.string),
  aj = list(pcm = state_table(cr, "pcm"), death = state_table(cr, "death")),
  aj_delayed = list(pcm = state_table(crd, "pcm"), death = state_table(crd, "death")),
  km_delayed = c(km_tab, list(median = unname(kmq$quantile), median_lower = unname(kmq$lower),
                              median_upper = unname(kmq$upper))),
  median_band = list(time = mt, event = me, median = unname(mq$quantile), lower = unname(mq$lower),
                     r_upper = unname(mq$upper), first_crossing_upper = first_cross,
                     band_upper = mf$upper, band_time = mf$time)
)
writeLines(toJSON(out, digits = I(15), na = "null", auto_unbox = TRUE, pretty = TRUE),
           "competing_risks_mgus2.json")
cat("\nwrote mgus2.csv and competing_risks_mgus2.json\n")

# Known answers for reports/statistics/observed_expected.py (tests/test_statistics_observed_expected.py).
#
# Regenerate (needs R with metafor and jsonlite; Debian: r-cran-metafor r-cran-jsonlite):
#   cd tests/reference && R --vanilla -q -f observed_expected.R > observed_expected.Rout 2>&1
# Writes observed_expected.json (every number the tests assert, 15 significant digits).
#
# Each block uses R's own functions, not a port of the Python code:
#   ulm          stats::poisson.test(O, E)$conf.int  (Ulm, Am J Epidemiol 1990;131:373: the exact
#                interval qgamma(a/2, O)/E, qgamma(1 - a/2, O + 1)/E; 0 when O = 0)
#   poisson_tail stats::poisson.test(O, E, alternative = "greater" / "less")$p.value
#   binom_tail   stats::binom.test(x, n, p0, alternative = "greater" / "less")$p.value
#   funnel       Spiegelhalter (Stat Med 2005;24:1185) Appendix A.1 interpolation with qpois / ppois:
#                r = qpois(p, E), alpha = (F(r) - p) / (F(r) - F(r - 1)), limit = max(0, (r - alpha) / E)
#   pln_*        Poisson-lognormal O | u ~ Poisson(E exp(u)), u ~ N(0, tau2): tails and funnel limits by
#                stats::integrate over the standard normal (an independent quadrature)
#   bcg          metafor::rma(method = "DL") on dat.bcg, log risk ratio (Colditz et al., JAMA 1994;271:698)
#   irln, plo    metafor::rma(measure = "IRLN" / "PLO", method = "DL") on small made-up sets

library(metafor)
library(jsonlite)
options(digits = 15, width = 120)
cat("R:", R.version.string, " metafor:", format(packageVersion("metafor")), "\n")

out <- list()

# --- Ulm exact interval for O/E -------------------------------------------------------------
ulm <- list()
for (conf in c(0.95, 0.998)) {
  for (O in c(0, 1, 2, 3, 5, 10, 17, 50, 100)) {
    for (E in c(0.5, 1, 4.2, 10, 37.5)) {
      ci <- poisson.test(O, E, conf.level = conf)$conf.int
      ulm[[length(ulm) + 1]] <- list(observed = O, expected = E, confidence = conf, lower = ci[1], upper = ci[2])
    }
  }
}
out$ulm <- ulm
cat("\nUlm / poisson.test, O = 10, E = 4.2:\n")
print(poisson.test(10, 4.2))

# --- exact one-sided Poisson tails --------------------------------------------------------
ptail <- list()
for (O in c(0, 1, 2, 4, 7, 12, 25, 60)) {
  for (E in c(0.3, 1.5, 4.2, 11, 30)) {
    ptail[[length(ptail) + 1]] <- list(
      observed = O, expected = E,
      p_high = poisson.test(O, E, alternative = "greater")$p.value,
      p_low = poisson.test(O, E, alternative = "less")$p.value
    )
  }
}
out$poisson_tail <- ptail

# --- exact one-sided binomial tails -------------------------------------------------------
btail <- list()
for (case in list(c(0, 10, 0.1), c(3, 10, 0.1), c(4, 10, 0.1), c(7, 40, 0.08), c(0, 60, 0.08),
                  c(15, 148, 0.05), c(30, 148, 0.3), c(1, 1, 0.5), c(20, 200, 0.15))) {
  x <- case[1]; n <- case[2]; p0 <- case[3]
  btail[[length(btail) + 1]] <- list(
    events = x, n = n, theta0 = p0,
    p_high = binom.test(x, n, p0, alternative = "greater")$p.value,
    p_low = binom.test(x, n, p0, alternative = "less")$p.value
  )
}
out$binom_tail <- btail

# --- exact Poisson funnel limits with interpolation ---------------------------------------
interp_limit <- function(p, E, cdf, quant) {
  r <- quant(p, E)
  Fr <- cdf(r, E)
  Fm <- if (r > 0) cdf(r - 1, E) else 0
  alpha <- if (Fr > Fm) (Fr - p) / (Fr - Fm) else 0
  max(0, (r - alpha) / E)
}
funnel <- list()
for (E in c(0.1, 0.5, 1, 2.5, 5, 10, 20, 50, 100, 250)) {
  for (p in c(0.001, 0.025, 0.975, 0.999)) {
    funnel[[length(funnel) + 1]] <- list(expected = E, p = p,
                                         limit = interp_limit(p, E, function(r, E) ppois(r, E), qpois))
  }
}
out$funnel <- funnel

# --- Poisson-lognormal by stats::integrate ------------------------------------------------
# P(X <= r) = int ppois(r, E exp(tau z)) dnorm(z) dz, split at the point where E exp(tau z) = r + 1.
pln_cdf <- function(r, E, tau2) {
  if (r < 0) return(0)
  tau <- sqrt(tau2)
  f <- function(z) ppois(r, E * exp(tau * z)) * dnorm(z)
  z0 <- min(max(log((r + 1) / E) / tau, -11), 11)
  integrate(f, -12, z0, rel.tol = 1e-13, abs.tol = 0, subdivisions = 2000L)$value +
    integrate(f, z0, 12, rel.tol = 1e-13, abs.tol = 0, subdivisions = 2000L)$value
}
pln_sf <- function(O, E, tau2) {  # P(X >= O)
  if (O <= 0) return(1)
  tau <- sqrt(tau2)
  f <- function(z) ppois(O - 1, E * exp(tau * z), lower.tail = FALSE) * dnorm(z)
  z0 <- min(max(log(O / E) / tau, -11), 11)
  integrate(f, -12, z0, rel.tol = 1e-13, abs.tol = 0, subdivisions = 2000L)$value +
    integrate(f, z0, 12, rel.tol = 1e-13, abs.tol = 0, subdivisions = 2000L)$value
}
pln_quantile <- function(p, E, tau2) {
  r <- 0
  while (pln_cdf(r, E, tau2) < p) r <- r + 1
  r
}
pln_tail <- list()
for (case in list(c(0, 2, 0.1), c(3, 2, 0.1), c(9, 2, 0.1), c(12, 5, 0.05), c(1, 5, 0.3),
                  c(40, 20, 0.2), c(6, 20, 0.2), c(0, 0.4, 1), c(130, 100, 0.02), c(70, 100, 0.02))) {
  O <- case[1]; E <- case[2]; t2 <- case[3]
  pln_tail[[length(pln_tail) + 1]] <- list(observed = O, expected = E, tau2 = t2,
                                           p_high = pln_sf(O, E, t2), p_low = pln_cdf(O, E, t2))
}
out$pln_tail <- pln_tail
pln_funnel <- list()
for (case in list(c(0.5, 0.1), c(3, 0.1), c(10, 0.05), c(40, 0.2), c(100, 0.02), c(25, 0.5))) {
  E <- case[1]; t2 <- case[2]
  for (p in c(0.001, 0.025, 0.975, 0.999)) {
    lim <- interp_limit(p, E, function(r, E) pln_cdf(r, E, t2), function(p, E) pln_quantile(p, E, t2))
    pln_funnel[[length(pln_funnel) + 1]] <- list(expected = E, tau2 = t2, p = p, limit = lim)
  }
}
out$pln_funnel <- pln_funnel

# --- DerSimonian-Laird with metafor -------------------------------------------------------
dl <- function(fit) list(tau2 = fit$tau2, q = fit$QE, df = fit$k - 1, i2 = fit$I2 / 100,
                         pooled = as.numeric(fit$beta), pooled_se = fit$se)

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
fit <- rma(yi, vi, data = bcg, method = "DL")
cat("\nBCG (dat.bcg), log risk ratio, DerSimonian-Laird:\n")
print(fit, digits = 6)
out$bcg <- c(list(trial = dat.bcg$trial, author = dat.bcg$author, year = dat.bcg$year,
                  tpos = dat.bcg$tpos, tneg = dat.bcg$tneg, cpos = dat.bcg$cpos, cneg = dat.bcg$cneg,
                  yi = as.numeric(bcg$yi), vi = as.numeric(bcg$vi)), dl(fit))

irln_o <- c(0, 2, 3, 5, 8, 4, 12, 1, 7, 20, 6, 15)
irln_e <- c(1.8, 2.5, 4.1, 3.9, 6.2, 7.7, 8.0, 2.2, 9.5, 12.4, 3.1, 14.9)
fit <- rma(measure = "IRLN", xi = irln_o, ti = irln_e, method = "DL")
cat("\nlog(O/E) (measure IRLN, add 1/2 to zero counts), DerSimonian-Laird:\n")
print(fit, digits = 6)
esc <- escalc(measure = "IRLN", xi = irln_o, ti = irln_e)
out$irln <- c(list(observed = irln_o, expected = irln_e, yi = as.numeric(esc$yi), vi = as.numeric(esc$vi)), dl(fit))

plo_x <- c(0, 3, 5, 12, 8, 20, 2, 15)
plo_n <- c(10, 25, 30, 40, 33, 60, 2, 50)
fit <- rma(measure = "PLO", xi = plo_x, ni = plo_n, method = "DL")
cat("\nlogit proportion (measure PLO, add 1/2 to both cells of a study with a zero cell), DerSimonian-Laird:\n")
print(fit, digits = 6)
esc <- escalc(measure = "PLO", xi = plo_x, ni = plo_n)
out$plo <- c(list(events = plo_x, n = plo_n, yi = as.numeric(esc$yi), vi = as.numeric(esc$vi)), dl(fit))

writeLines(toJSON(out, digits = I(15), na = "null", auto_unbox = TRUE, pretty = TRUE), "observed_expected.json")
cat("\nwrote observed_expected.json\n")

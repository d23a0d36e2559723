"""Symbolic derivation: derivatives, guarded simplification, removable singularities and their checks.

Conventions
-----------
* Kinks follow PyTorch: at a branch boundary the derivative is the derivative of the branch selected there;
  ``d|x|/dx = sign(x)`` (0 at 0); Dirac deltas from differentiating ``sign``/step functions are dropped
  (derivatives are almost-everywhere derivatives, exactly like autograd's).
* Simplification is *guarded*: a simplified form is accepted only if it is not larger and introduces no new
  function types (``simplify`` likes to rewrite ``tanh`` into exponentials, which overflow), and only within a
  time budget so a hostile expression cannot hang code generation.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import sympy as sp
from sympy.core.function import PoleError

from actsym.budget import in_finalizer
from actsym.rewrite import canonicalize, stabilize

SIMPLIFY_SECONDS = 5
#: Seconds for one limit/series (removable singularities) or one condition simplification (hazards).
LIMIT_SECONDS = 3
#: Seconds for the Taylor series at a removable singularity (sigmoid(x)**3*expm1(x)**2/log1p(x**2): ~6 s).
SERIES_SECONDS = 20
TAYLOR_RADIUS = sp.Rational(1, 20)
TAYLOR_ORDER = 10


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_budget(seconds: float):
    """Raise :class:`_Timeout` inside the block after ``seconds`` of CPU time (``SIGPROF``: a loaded machine gets the
    same work done, so what a search finds does not depend on the load; main thread on Unix only; else no limit)."""
    usable = hasattr(signal, "SIGPROF") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    armed = [True]

    def handler(signum, frame):
        if not armed[0]:  # the block is being left
            return
        if in_finalizer(frame):
            # a finalizer or __del__ running during garbage collection: an exception there is printed
            # ("Exception ignored in ...") and lost; raise a moment later, in ordinary code
            signal.setitimer(signal.ITIMER_PROF, 1e-3)
            return
        # again a moment later unless the block is left by then: SymPy catches ``Exception`` in places,
        # and a swallowed timeout would leave the rest of the block without a limit
        signal.setitimer(signal.ITIMER_PROF, 0.1)
        raise _Timeout

    # An enclosing budget (actsym.budget's in-process fallback, or another time_budget) keeps its deadline:
    # the inner one never outlasts it, and the outer alarm is re-armed on exit (due at once if it passed).
    outer_left, _ = signal.getitimer(signal.ITIMER_PROF)
    start = time.process_time()  # what ITIMER_PROF counts: this process, every thread
    old = signal.signal(signal.SIGPROF, handler)
    signal.setitimer(signal.ITIMER_PROF, min(seconds, outer_left) if outer_left > 0 else seconds)
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
        if outer_left > 0:
            signal.setitimer(signal.ITIMER_PROF, max(outer_left - (time.process_time() - start), 1e-4))


def _function_types(e: sp.Basic) -> set[type]:
    return {type(f) for f in e.atoms(sp.Function)}


def _risky_powers(e: sp.Basic) -> set:
    """Powers with a symbolic exponent of a base that may be negative (``x**(a - 2)``: NaN for x < 0 and a
    non-integer, and its derivative in a has log(x)); simplify turns ``|x|**a/|x|**2`` into ``|x**(a - 2)|``."""
    return {p for p in e.atoms(sp.Pow) if not p.exp.is_number and p.base != sp.E and p.base.is_nonnegative is not True}


def guarded_simplify(expr: sp.Expr, seconds: float = SIMPLIFY_SECONDS) -> sp.Expr:
    """``simplify`` branch by branch, keeping the result only if it is smaller and no less stable."""
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*[(guarded_simplify(e, seconds), c) for e, c in expr.args])
    try:
        with time_budget(seconds):
            candidate = stabilize(sp.simplify(expr))
    except (_Timeout, RecursionError, TypeError, ValueError, NotImplementedError):
        return expr
    if not _function_types(candidate) <= _function_types(expr) or not _risky_powers(candidate) <= _risky_powers(expr):
        return expr
    if sp.count_ops(candidate) < sp.count_ops(expr):
        return candidate
    return expr


class _RealAbs(sp.Function):
    """|u| of a real u while differentiating: d|u| = sign(u)*du. (Where SymPy cannot prove u real -- log(u),
    u**(1/3), a custom function -- Abs takes the complex rule re(u)*d re(u)/|u| rewritten with sign, and
    every |v| in it becomes v/sign(v): 0/0 at v = 0, e.g. Abs(x) -> x/sign(x).)"""

    def fdiff(self, argindex=1):
        return sp.sign(self.args[0])


def differentiate(expr: sp.Expr, wrt: sp.Symbol, simplify: bool = True) -> sp.Expr:
    """d expr / d wrt with the conventions of this module, stabilized and (optionally) simplified."""
    d = sp.diff(expr.replace(sp.Abs, _RealAbs), wrt).replace(_RealAbs, sp.Abs)
    d = d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    # sign(u)/Heaviside(u) of an argument SymPy cannot prove real (x**(1/3)) stay as unevaluated
    # Derivative(sign(u), x): a step function, whose a.e. derivative is 0 like the Dirac deltas above.
    d = d.replace(
        lambda e: isinstance(e, (sp.Derivative, sp.Subs)) and isinstance(e.expr, (sp.sign, sp.Heaviside)),
        lambda e: sp.S.Zero,
    )
    left = d.atoms(sp.Derivative)
    if left:
        from actsym.parse import ExpressionError

        raise ExpressionError(f"SymPy cannot differentiate {sp.sstr(next(iter(left)).expr)} with respect to {wrt}")
    d = canonicalize(d)
    if simplify:
        d = guarded_simplify(d)
    return d


# --------------------------------------------------------------------------------------------------------
# Branch regions (used for removable singularities, safe points and hazard reports)
# --------------------------------------------------------------------------------------------------------


def branches(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Basic]]:
    """(value, condition) pairs of a top-level Piecewise, or ``[(expr, True)]``."""
    if isinstance(expr, sp.Piecewise):
        return [(e, c) for e, c in expr.args]
    return [(expr, sp.true)]


#: Seconds one branch's region may take (SymPy's set algebra on products of many-branch Piecewise can
#: take minutes); past it the region is unknown (None), like a parameter-dependent one.
REGION_SECONDS = 2


def effective_regions(conds: list[sp.Basic], x: sp.Symbol) -> list[sp.Set | None]:
    """Set of x where each branch is *selected* (its condition holds and no earlier one does).

    ``None`` when a region is unknown: a condition that is not a univariate condition on x (it depends on a
    parameter: substitute parameter values first for regions at those values), one SymPy cannot turn into
    a set, or one whose set algebra runs past ``REGION_SECONDS``. Every region after an unknown one is
    unknown too (it depends on what the unknown one took).
    """
    regions: list[sp.Set | None] = []
    taken: sp.Set | None = sp.S.EmptySet
    for c in conds:
        if taken is None or (c is not sp.true and c.free_symbols - {x}):
            regions.append(None)
            taken = None
            continue
        try:
            with time_budget(REGION_SECONDS):
                s = sp.S.Reals if c is sp.true else c.as_set()
                region = sp.Intersection(s, sp.Complement(sp.S.Reals, taken))
                taken = sp.Union(taken, s)
        except (_Timeout, NotImplementedError, AttributeError, TypeError, ValueError, RecursionError):
            regions.append(None)
            taken = None
            continue
        regions.append(region)
    return regions


def interior_points(region: sp.Set, count: int = 3, margin: float = 0.05, isolated: bool = True) -> list[float]:
    """A few deterministic points well inside ``region`` (for numeric checks and safe substitution).

    ``isolated=False`` leaves out the isolated points of the region (a one-point branch such as {x = 0} has
    no interior: a finite difference there crosses into its neighbours)."""
    intervals = list(region.args) if isinstance(region, sp.Union) else [region]
    points: list[float] = []
    for iv in intervals:
        if isinstance(iv, sp.FiniteSet):
            if isolated:
                points += [float(p) for p in iv if p.is_real]
            continue
        if not isinstance(iv, sp.Interval):
            continue
        lo, hi = iv.inf, iv.sup
        if lo.is_infinite and hi.is_infinite:
            cands = [0.37, -0.81, 1.93, -2.6, 0.05]
        elif lo.is_infinite:
            cands = [float(hi) - d for d in (0.5, 1.7, 3.1, 0.13)]
        elif hi.is_infinite:
            cands = [float(lo) + d for d in (0.5, 1.7, 3.1, 0.13)]
        else:
            a, b = float(lo), float(hi)
            w = b - a
            if w <= 0:
                continue
            cands = [a + w * f for f in (0.5, 0.31, 0.77, 0.12, 0.9)]
            cands = [c for c in cands if min(c - a, b - c) >= min(margin, w / 10)]
        points += cands
    return points[: max(count, 1)] if count else points


def safe_point(region: sp.Set | None, value: sp.Expr, x: sp.Symbol, subs: dict) -> float | None:
    """A point inside the branch's region where the branch value is finite (for masked evaluation)."""
    if region is None or region is sp.S.EmptySet:
        return None
    for p in interior_points(region, count=0):
        try:
            v = complex(value.subs(subs).subs(x, p).evalf(30))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, MemoryError):
            continue
        if abs(v) < 1e30 and abs(v.imag) < 1e-12:
            return round(p, 6)
    return None


# --------------------------------------------------------------------------------------------------------
# Removable singularities
# --------------------------------------------------------------------------------------------------------


def _x_denominators(expr: sp.Expr, x: sp.Symbol) -> set[sp.Expr]:
    dens = set()
    for p in expr.atoms(sp.Pow):
        base, e = p.args
        if e.is_negative and base.has(x):
            dens.add(base)
    return dens


def _plain(e: sp.Expr) -> sp.Expr:
    """The stable primitives written with exp/log again (for solvers and limits that don't know them)."""
    from actsym.functions import STABLE_FUNCTIONS

    return e.replace(
        lambda n: isinstance(n, tuple(STABLE_FUNCTIONS.values())),
        lambda n: _PLAIN[type(n).__name__](n.args[0]),
    )


_PLAIN = {
    "sigmoid": lambda u: 1 / (1 + sp.exp(-u)),
    "softplus": lambda u: sp.log(1 + sp.exp(u)),
    "log1p": lambda u: sp.log(1 + u),
    "expm1": lambda u: sp.exp(u) - 1,
    "ndtr": lambda u: (1 + sp.erf(u / sp.sqrt(2))) / 2,
    "logabs": lambda u: sp.log(sp.Abs(u)),
}


def _real_roots(d: sp.Expr, x: sp.Symbol) -> list[sp.Expr] | None:
    """Real roots of d(x) = 0: polynomials (coefficients may contain parameters) of degree <= 4, or a
    finite set of parameter-free roots found by ``solveset`` within a time budget. None if unknown."""
    try:
        with time_budget(LIMIT_SECONDS):
            poly = sp.Poly(d, x)
            if poly.degree() > 4:
                return None
            return [r for r in sp.solve(poly.as_expr(), x) if r.is_real is not False]
    except (sp.PolynomialError, NotImplementedError):
        pass
    except _ANALYSIS_ERRORS:
        return None
    try:
        with time_budget(2):
            roots = sp.solveset(_plain(d), x, sp.S.Reals)
    except _ANALYSIS_ERRORS:
        return None
    if isinstance(roots, sp.FiniteSet) and len(roots) <= 8:
        return list(roots)
    return None


#: What SymPy's limit/series/simplify raise on forms they cannot handle (tanh(log(log(x))): PoleError).
_ANALYSIS_ERRORS = (_Timeout, PoleError, NotImplementedError, ValueError, TypeError, ArithmeticError, RecursionError)


def _contains(region: sp.Set, r: sp.Expr) -> bool:
    try:
        return region.contains(r) is sp.true
    except _ANALYSIS_ERRORS:
        return False


#: Taylor polynomials found, by (value, x, r, order): f and its derivatives share their singular units, and a
#: unit's polynomial does not change (failures are not kept: they may be timeouts of a busy moment).
_TAYLOR_CACHE: dict = {}
_TAYLOR_CACHE_SIZE = 512


def _cached(fn):
    def wrapper(*args):
        key = (fn.__name__, *(tuple(a) if isinstance(a, list) else a for a in args))
        hit = _TAYLOR_CACHE.get(key)
        if hit is not None:
            return hit
        out = fn(*args)
        if out is not None:
            if len(_TAYLOR_CACHE) >= _TAYLOR_CACHE_SIZE:
                _TAYLOR_CACHE.pop(next(iter(_TAYLOR_CACHE)))
            _TAYLOR_CACHE[key] = out
        return out

    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


@_cached
def _taylor_if_removable(value: sp.Expr, x: sp.Symbol, r: sp.Expr, order: int = TAYLOR_ORDER) -> sp.Expr | None:
    """The Taylor polynomial (``order`` terms) of ``value`` at ``r`` if both one-sided limits there exist and
    agree; None if they don't, or SymPy cannot tell within ``LIMIT_SECONDS`` (the point stays unpatched)."""
    if any(k.has(x) for k in value.atoms(sp.Abs, sp.sign, sp.Heaviside)):
        # not analytic at a kink: equal one-sided limits do not make a Taylor series valid on both sides
        # ((x - |x|)/atan(sign(x)) has limit 0 from both sides, and SymPy's series of it is 0)
        return None
    plain = _plain(value)
    if plain.free_symbols == {x}:  # no parameter: the coefficients by contour integrals (fast, any shape)
        taylor = numeric_taylor(plain, x, r, order)
        if taylor is not None:
            return taylor
    try:
        with time_budget(LIMIT_SECONDS):
            left = sp.limit(plain, x, r, "-")
            right = sp.limit(plain, x, r, "+")
            if not (left.is_finite and sp.simplify(left - right) == 0):
                return None
        with time_budget(SERIES_SECONDS):  # a real removable singularity: worth more time than a guess
            return sp.series(plain, x, r, order).removeO()
    except _Timeout:
        return numeric_taylor(plain, x, r, order)  # SymPy took too long: the coefficients by contour integrals
    except _ANALYSIS_ERRORS:
        return None


#: Contour integrals for :func:`numeric_taylor`: points on each circle, the two radii, working digits.
CONTOUR_POINTS = 64
CONTOUR_RADII = (sp.Rational(1, 4), sp.Rational(1, 16))
CONTOUR_DPS = 50


def numeric_taylor(value: sp.Expr, x: sp.Symbol, r: sp.Expr, order: int = TAYLOR_ORDER) -> sp.Expr | None:
    """The Taylor polynomial (``order`` terms, 30-digit coefficients) of a parameter-free ``value`` at ``r``
    from Cauchy's integral formula, where SymPy's symbolic series is too slow: the trapezoidal rule on circles
    of two radii around r (``CONTOUR_POINTS`` points, ``CONTOUR_DPS`` digits) gives the Laurent coefficients.
    The point is removable only if the negative ones vanish and the two circles agree on every kept
    coefficient (another singularity inside a circle makes them differ); otherwise None."""
    import mpmath

    if value.free_symbols != {x} or not r.is_number:
        return None
    try:
        with time_budget(LIMIT_SECONDS):
            fn = sp.lambdify(x, value, modules="mpmath")
            with mpmath.workdps(CONTOUR_DPS):
                r0 = mpmath.mpf(str(sp.N(r, CONTOUR_DPS + 10)))
                n = CONTOUR_POINTS
                roots = [mpmath.expj(2 * mpmath.pi * j / n) for j in range(n)]
                found = []
                for rho in CONTOUR_RADII:
                    rho = mpmath.mpf(rho.p) / rho.q
                    vals = [mpmath.mpc(fn(r0 + rho * w)) for w in roots]
                    scale = max(abs(v) for v in vals)
                    if not mpmath.isfinite(scale) or scale == 0:
                        return None
                    # c[k] = a_k * rho**k (k < 0: the principal part, which a removable point does not have)
                    c = {k: mpmath.fsum(v * w ** (-k) for v, w in zip(vals, roots)) / n for k in range(-3, order)}
                    if any(abs(c[k]) > mpmath.mpf(10) ** -30 * scale for k in range(-3, 0)):
                        return None
                    found.append(([c[k] / rho**k for k in range(order)], rho, scale))
                (a, rho, scale), (b, _, _) = found
                for k in range(order):
                    if abs(a[k] - b[k]) * rho**k > mpmath.mpf(10) ** -28 * scale or abs(a[k].imag) * rho**k > \
                            mpmath.mpf(10) ** -28 * scale:
                        return None
                # a coefficient below the noise floor (an odd one of an even function: 1e-45 instead of 0) is 0
                floor = mpmath.mpf(10) ** -27 * scale
                coeffs = [sp.Float(mpmath.nstr(b[k].real, 30), 30) if abs(b[k].real) * rho**k > floor else sp.S.Zero
                          for k in range(order)]
    except (*_ANALYSIS_ERRORS, ZeroDivisionError, OverflowError):
        return None
    return sp.Add(*[c * (x - r) ** k for k, c in enumerate(coeffs) if c != 0])


def truncate_taylor(poly: sp.Expr, x: sp.Symbol, r: sp.Expr, order: int = TAYLOR_ORDER) -> sp.Expr:
    """The terms of degree < ``order`` in (x - r) of a polynomial, stabilized (the form a patch uses): a
    polynomial in x itself at r = 0, in powers of (x - r) otherwise (expanded into powers of x, the terms
    of a patch at x = pi cancel each other down to no correct digit)."""
    t = sp.Dummy("t")
    terms = sp.expand(poly.subs(x, r + t))
    kept = sp.Add(*[a for a in sp.Add.make_args(terms) if a.as_coeff_exponent(t)[1] < order])  # t**(21/2) too
    # coefficients that are irrational numbers (exp(1/2)/(64 + 448*exp(1/2) + ...) from softplus at the point)
    # as 30-digit floats: the same value to far below float64's rounding, and a readable patch
    kept = sp.Add(*[_numeric(c) * k for k, c in sp.collect(sp.expand(kept), t, evaluate=False).items()])
    if r == 0:
        return stabilize(sp.expand(kept.subs(t, x)))
    # Horner's form in (x - r): c*(x - r) with a number c would be distributed by SymPy into c*x - c*r, which
    # cancels for large r; (x - r)*(c1 + (x - r)*(...)) keeps every level a product of two sums
    by_power = sp.collect(kept, t, evaluate=False)
    if any(k != 1 and not (k == t or (k.is_Pow and k.base == t and k.exp.is_Integer and k.exp > 0))
           for k in by_power):
        return stabilize(kept.xreplace({t: sp.Add(x, -r, evaluate=False)}))
    degree = {1: 0, t: 1, **{k: int(k.exp) for k in by_power if k.is_Pow}}
    coeff = {degree[k]: c for k, c in by_power.items()}
    u = sp.Add(x, -r, evaluate=False)
    h = sp.S.Zero
    for k in range(max(coeff), -1, -1):
        h = coeff.get(k, sp.S.Zero) + u * h
    return stabilize(h)


def _numeric(c: sp.Expr) -> sp.Expr:
    if c.is_number and not c.is_Rational and not c.free_symbols:
        return sp.Float(c.evalf(30), 30)
    return c


#: A patch's truncation error must stay below this fraction of its value.
TAYLOR_TOLERANCE = 2.0**-56


def taylor_radius(full: sp.Expr, x: sp.Symbol, r: sp.Expr, subs: dict | None) -> sp.Expr:
    """Radius of a patch: TAYLOR_RADIUS, or less where the highest term of ``full`` (the first one the patch
    omits) is larger than TAYLOR_TOLERANCE times the lowest term there (``asinh(3*x)/(3*x)``: coefficients grow like
    3**k, and at |x| = 1/20 ten terms leave 1e-8; evaluated at the parameters' initial values)."""
    t = sp.Dummy("t")
    try:
        with time_budget(LIMIT_SECONDS):
            poly = sp.Poly(sp.expand(full.subs(x, r + t).subs(subs or {})), t)
            coeffs = {m[0]: abs(complex(c.evalf(20))) for m, c in zip(poly.monoms(), poly.coeffs())}
    except (*_ANALYSIS_ERRORS, sp.PolynomialError):
        return TAYLOR_RADIUS
    nonzero = sorted(k for k, c in coeffs.items() if c > 0)
    if len(nonzero) < 2:
        return TAYLOR_RADIUS
    # the highest term: the first one the patch omits (f), or the last kept (a derivative of f's polynomial)
    low, top = nonzero[0], nonzero[-1]
    rho = (TAYLOR_TOLERANCE * coeffs[low] / coeffs[top]) ** (1.0 / (top - low))
    if rho >= float(TAYLOR_RADIUS):
        return TAYLOR_RADIUS
    return sp.Float(float(f"{rho:.2g}"))


def _condition_at(cond: sp.Basic, x: sp.Symbol, r: sp.Expr) -> sp.Basic:
    """``cond`` at x = r, simplified: when a hazard at r is in the branch. ``True`` (it may be) when SymPy
    cannot decide (``x <= a/x`` at the pole x = 0 compares with infinity)."""
    try:
        with time_budget(LIMIT_SECONDS):
            when = sp.simplify(cond.subs(x, r))
    except _ANALYSIS_ERRORS:
        return sp.true
    if not isinstance(when, sp.logic.boolalg.Boolean) or when.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        return sp.true
    return when


def _finite_limit(value: sp.Expr, x: sp.Symbol, r: sp.Expr) -> bool:
    try:
        with time_budget(LIMIT_SECONDS):
            return bool(sp.limit(_plain(value), x, r, "-").is_finite)
    except _ANALYSIS_ERRORS:
        return False


_NON_ANALYTIC = (sp.Max, sp.Min, sp.Abs, sp.sign, sp.Heaviside, sp.Piecewise)


def _vanishes_at(e: sp.Expr, x: sp.Symbol, r: sp.Expr) -> bool:
    for d in _x_denominators(e, x):
        try:
            if sp.simplify(d.subs(x, r)) == 0:
                return True
        except (TypeError, ValueError, ZeroDivisionError):
            return True
    return False


def _patch_at(e: sp.Expr, x: sp.Symbol, r: sp.Expr, known, record, top: bool,
              subs: dict | None = None) -> tuple[sp.Expr, bool]:
    """``e`` with its removable singularity at ``r`` patched in the *smallest analytic subexpressions* that
    contain it: a Max/Min/Abs/sign/Piecewise node is never replaced by a Taylor polynomial (its series is not
    valid on both sides: ``Max(softplus(a), sin(x)/x)`` became 1 at 0), the patch goes into its arguments.
    ``known``/``record`` (the derivative's patch as the derivative of f's polynomial) apply to a patch of the
    whole branch value only."""
    if isinstance(e, sp.logic.boolalg.Boolean) or not e.has(x) or not _vanishes_at(e, x, r):
        return e, False
    def analytic(t):
        return not (isinstance(t, _NON_ANALYTIC) or any(k.has(x) for k in t.atoms(*_NON_ANALYTIC)))

    if (e.is_Add or e.is_Mul) and not analytic(e):
        # keep the analytic terms/factors together (sin(g*x)*x**-1 is removable only as a unit), patch that
        # unit, and the non-analytic ones each inside
        smooth = [a for a in e.args if analytic(a)]
        rough = [a for a in e.args if not analytic(a)]
        changed = False
        parts = []
        if smooth:
            unit, changed = _patch_at(e.func(*smooth), x, r, None, None, top=False, subs=subs)
            parts.append(unit)
        for a in rough:
            v, c = _patch_at(a, x, r, None, None, top=False, subs=subs)
            parts.append(v)
            changed |= c
        return (e.func(*parts) if changed else e), changed
    if any(k.has(x) for k in e.atoms(*_NON_ANALYTIC)) or isinstance(e, _NON_ANALYTIC):
        args, changed = [], False
        for a in e.args:
            if isinstance(a, sp.functions.elementary.piecewise.ExprCondPair):
                v, c = _patch_at(a.expr, x, r, None, None, top=False, subs=subs)
                args.append((v, a.cond))
            else:
                v, c = _patch_at(a, x, r, None, None, top=False, subs=subs)
                args.append(v)
            changed |= c
        return (e.func(*args) if changed else e), changed
    if top and known is not None and known.get(r) is not None and _agrees_near(known[r], e, x, r, subs):
        full = known[r]
    else:
        full = None
        if e.free_symbols - {x}:
            # parameters: SymPy's limits of a whole value are slow there (seconds, often past LIMIT_SECONDS).
            # A product of regular factors over poles: the quotient of their Taylor series (a polynomial of
            # the whole value, handed down to the derivatives as usual); anything else: the smallest
            # singular units first, each so (cached across f and its derivatives, which share them)
            poles = [a for a in e.args if _is_pole(a, x, r)] if e.is_Mul else []
            rest = [a for a in e.args if a not in poles] if poles else []
            if poles and not any(_vanishes_at(a, x, r) for a in rest):
                full = _quotient_series(rest, poles, x, r, TAYLOR_ORDER + 1)
            if full is None:
                v, changed = _patch_units(e, x, r, subs)
                if changed and _value_at(v, x, r, subs) is not None:
                    if top and record is not None:
                        record[r] = None  # no whole-value polynomial to hand down
                    return v, True
        if full is None:
            full = _taylor_if_removable(e, x, r, TAYLOR_ORDER + 1)
        if full is None:
            if top and record is not None:
                record[r] = None  # a branch vanishing at r without a polynomial: none is reused at r
            # SymPy found no series of the whole value (or not in time): patch the smallest singular units
            return _patch_units(e, x, r, subs)
        if top and record is not None:
            # two branches of f patched at the same point with different polynomials: which one a derivative
            # branch belongs to is unknown (conditions merge), so none is reused there
            record[r] = full if r not in record or record[r] == full else None
    return _taylor_patch(e, full, x, r, subs), True


def _value_at(e: sp.Expr, x: sp.Symbol, r: sp.Expr, subs: dict | None) -> complex | None:
    """e at x = r (parameters at ``subs``) as a number; None where it is not a finite number there."""
    try:
        with time_budget(LIMIT_SECONDS):
            v = complex(sp.N(e.subs(x, r).subs(subs or {}), 20))
    except (*_ANALYSIS_ERRORS, ZeroDivisionError):
        return None
    return v if v == v and abs(v) != float("inf") else None


def _is_pole(e: sp.Expr, x: sp.Symbol, r: sp.Expr) -> bool:
    """e is ``d**-k`` with d(r) = 0: a factor that is infinite at r."""
    return bool(e.is_Pow and e.exp.is_negative and e.base.has(x) and _vanishes_at(e, x, r))


def _patch_units(e: sp.Expr, x: sp.Symbol, r: sp.Expr, subs: dict | None) -> tuple[sp.Expr, bool]:
    """The removable singularity at ``r`` patched in the smallest subexpressions that carry it, where the
    whole value has no (timely) series: ``tan(tanh(sqrt(softplus(x) + 1)*(1 - cos(u))/u**2))`` becomes
    ``tan(tanh(sqrt(softplus(x) + 1)*P(u)))`` with ``P`` the patch of ``(1 - cos(u))/u**2`` alone.

    A product: its pole factors (``d**-k``, d(r) = 0) and the factors that are 0 at r (what may cancel the
    pole) form the unit; every other factor is patched on its own (``sigmoid(sin(x)/x)``) and stays outside.
    A sum: each term is patched on its own; the terms still not finite at r are patched together (their
    poles may cancel each other: ``1/x - 1/sin(x)``). A function of a singular argument: its argument.
    Anything SymPy cannot expand in time stays as it was (the self-check then refuses the code)."""
    if isinstance(e, sp.logic.boolalg.Boolean) or not e.has(x) or not _vanishes_at(e, x, r):
        return e, False
    changed = False
    if e.is_Mul:
        poles, zeros, outside = [], [], []
        for a in e.args:
            if _is_pole(a, x, r):
                poles.append(a)
                continue
            v, c = _patch_units(a, x, r, subs)
            if _value_at(v, x, r, subs) == 0:
                zeros.append((a, v))
            else:
                outside.append(v)
            changed |= c
        if poles:
            unit = sp.Mul(*poles, *(a for a, _ in zeros))
            # with parameters, the quotient of the two factors' Taylor series first (SymPy's limits of the
            # whole are slow there, and contour integrals cannot keep parameters symbolic)
            parametric = bool(unit.free_symbols - {x})
            full = _quotient_series([v for _, v in zeros], poles, x, r, TAYLOR_ORDER + 1) if parametric else None
            if full is None:
                full = _taylor_if_removable(unit, x, r, TAYLOR_ORDER + 1)
            if full is None and not parametric:
                full = _quotient_series([v for _, v in zeros], poles, x, r, TAYLOR_ORDER + 1)
            if full is None:
                return e, False  # the product stays singular: patching its factors would not help
            return sp.Mul(*outside, _taylor_patch(unit, full, x, r, subs)), True
        return (sp.Mul(*outside, *(v for _, v in zeros)) if changed else e), changed
    if e.is_Add:
        fixed, rest = [], []
        for a in e.args:
            v, c = _patch_units(a, x, r, subs)
            if not _vanishes_at(a, x, r) or _value_at(v, x, r, subs) is not None:
                fixed.append(v)
                changed |= c
            else:
                rest.append(a)
        if len(rest) > 1:
            unit = sp.Add(*rest)
            common = sp.factor_terms(unit)  # sqrt(s)*sin(u)/u**2 - 4*sqrt(s)*sin(u/2)**2/u**3: sqrt(s) outside
            if common.is_Mul:
                v, c = _patch_units(common, x, r, subs)
                if c and _value_at(v, x, r, subs) is not None:
                    return sp.Add(*fixed, v), True
            full = _taylor_if_removable(unit, x, r, TAYLOR_ORDER + 1)
            if full is not None:
                return sp.Add(*fixed, _taylor_patch(unit, full, x, r, subs)), True
        return (sp.Add(*fixed, *rest) if changed else e), changed
    args = []
    for a in e.args:
        v, c = _patch_units(a, x, r, subs)
        args.append(v)
        changed |= c
    return (e.func(*args) if changed else e), changed


@_cached
def _quotient_series(zeros: list, poles: list, x: sp.Symbol, r: sp.Expr, order: int) -> sp.Expr | None:
    """The Taylor polynomial (``order`` terms) at r of ``prod(zeros) / prod(d**k for the poles d**-k)`` as the
    quotient of the two factors' own Taylor series (each analytic at r; the patches of inner removable
    singularities stand as their polynomials), where SymPy's limits of the whole are too slow -- typically with
    parameters, which contour integrals cannot keep symbolic. None unless the numerator vanishes at r at least
    to the order of the denominator's zero (then the point is removable)."""
    def polynomial(v):  # an inner patch Piecewise((P, |x - r| < rho), (orig, True)) -> P
        return v.replace(lambda n: isinstance(n, sp.Piecewise) and len(n.args) == 2 and n.args[1].cond is sp.true
                         and isinstance(n.args[0].cond, sp.StrictLessThan) and n.args[0].cond.lhs == sp.Abs(x - r),
                         lambda n: n.args[0].expr)

    num = sp.Mul(*[polynomial(v) for v in zeros])
    den = sp.Mul(*[p.base ** (-p.exp) for p in poles])
    if any(k.has(x) for k in sp.Add(num, den).atoms(*_NON_ANALYTIC)):
        return None
    t = sp.Dummy("t")
    try:
        with time_budget(SERIES_SECONDS):
            extra = 6
            a = _coefficients(_plain(num).subs(x, r + t), t, order + extra)
            b = _coefficients(_plain(den).subs(x, r + t), t, order + extra)
            if a is None or b is None:
                return None
            m = next((k for k, c in enumerate(b) if sp.simplify(c) != 0), None)
            if m is None or m >= extra or any(sp.simplify(c) != 0 for c in a[:m]):
                return None
            a, b = a[m:], b[m:]
            q: list = []
            for k in range(order):  # power-series division: sum_j b_j q_{k-j} = a_k
                q.append(sp.cancel((a[k] - sum(b[j] * q[k - j] for j in range(1, k + 1))) / b[0]))
    except (*_ANALYSIS_ERRORS, sp.PolynomialError, ZeroDivisionError):
        return None
    return sp.Add(*[c * (x - r) ** k for k, c in enumerate(q)])


def _coefficients(e: sp.Expr, t: sp.Symbol, n: int) -> list | None:
    """The first n Taylor coefficients of e (analytic at t = 0), or None."""
    s = sp.series(e, t, 0, n).removeO()
    poly = sp.Poly(s, t) if s.has(t) else None
    if poly is None:
        return [s] + [sp.S.Zero] * (n - 1)
    coeffs = dict(zip((m[0] for m in poly.monoms()), poly.coeffs()))
    return [coeffs.get(k, sp.S.Zero) for k in range(n)]


def _taylor_patch(e: sp.Expr, full: sp.Expr, x: sp.Symbol, r: sp.Expr, subs: dict | None) -> sp.Expr:
    """``e`` near r replaced by the truncation of its Taylor polynomial ``full`` (one term more than kept)."""
    taylor = truncate_taylor(full, x, r)
    radius = taylor_radius(full, x, r, subs)
    return sp.Piecewise((taylor, sp.Abs(x - r) < radius), (e, True))


def _agrees_near(poly: sp.Expr, e: sp.Expr, x: sp.Symbol, r: sp.Expr, subs: dict | None) -> bool:
    """A polynomial handed down from f's patch (``known``) is used for this branch only if it *is* this
    branch's expansion: equal to it, at the parameters' values, at two points beside r (to 1e-6
    relative). Conditions merge, so the branch a derivative's polynomial came from is not known otherwise."""
    h = sp.Rational(1, 100)
    try:
        with time_budget(LIMIT_SECONDS):
            for t in (r - h, r + h):
                a = complex(sp.N(poly.subs(x, t).subs(subs or {}), 20))
                b = complex(sp.N(e.subs(x, t).subs(subs or {}), 20))
                if not (abs(a - b) <= 1e-6 * max(1.0, abs(b))):
                    return False
    except (*_ANALYSIS_ERRORS, TypeError, ValueError):
        return False
    return True


def _patch_condition(cond: sp.Basic, x: sp.Symbol, subs: dict | None = None) -> tuple[sp.Basic, list[float]]:
    """Removable singularities inside a branch condition (``softplus(a) >= sin(x)/x``, from a Max) patched
    too: unpatched, the comparison is NaN-false at the point and selects the wrong branch there."""
    if cond is sp.true or cond is sp.false or not isinstance(cond, sp.Basic):
        return cond, []
    points: list[float] = []
    reps = {}
    for rel in cond.atoms(sp.core.relational.Relational):
        sides = []
        for side in (rel.lhs, rel.rhs):
            for d in _x_denominators(side, x):
                for r in _real_roots(d, x) or []:
                    if r.free_symbols or r.is_real is not True:
                        continue
                    side, changed = _patch_at(side, x, r, None, None, top=False, subs=subs)
                    if changed:
                        points.append(float(r))
            sides.append(side)
        if sides != [rel.lhs, rel.rhs]:
            reps[rel] = rel.func(*sides, evaluate=False)
    return (cond.xreplace(reps) if reps else cond), points


def patch_removable(
    expr: sp.Expr, x: sp.Symbol, known: dict | None = None, record: dict | None = None, subs: dict | None = None
) -> tuple[sp.Expr, list[float]]:
    """Replace the expression near parameter-free removable singularities by its Taylor polynomial.

    Returns the patched expression and the points that were patched. ``sin(x)/x`` becomes
    ``Piecewise((1 - x**2/6 + ..., |x| < 1/20), (sin(x)/x, True))``, so both the value and all derivatives
    at 0 equal their limits.

    ``record``: filled with {r: Taylor polynomial with one term more than the patch} for every patched point
    r, so that a derivative's patch is the derivative of that polynomial: ``known`` = {r: polynomial of this
    expression at r} skips the limits and the series (SymPy's series of a derivative can take a minute where
    the derivative of f's series takes nothing).
    """
    patched_points: list[float] = []
    new_branches = []
    conds = [c for _, c in branches(expr)]
    regions = effective_regions(conds, x)
    for (value, cond), region in zip(branches(expr), regions):
        for d in _x_denominators(value, x):
            for r in _real_roots(d, x) or []:
                if r.free_symbols or r.is_real is not True or (region is not None and not _contains(region, r)):
                    continue
                value, changed = _patch_at(value, x, r, known, record, top=True, subs=subs)
                if changed:
                    patched_points.append(float(r))
        cond, cond_points = _patch_condition(cond, x, subs)
        patched_points += cond_points
        new_branches.append((value, cond))
    if not patched_points:
        return expr, []
    result = sp.piecewise_fold(sp.Piecewise(*new_branches)) if len(new_branches) > 1 else new_branches[0][0]
    return result, sorted(set(patched_points))


def patch_parameter_singularities(expr: sp.Expr, x: sp.Symbol, params: list[sp.Symbol]) -> tuple[sp.Expr, list[str]]:
    """Removable singularities in a *parameter*: ``(exp(a*x) - 1)/a`` is 0/0 for every x at a = 0, where its
    continuous extension is x. For each denominator that depends on parameters only, at each numeric root r
    of one parameter p where the two one-sided limits agree, the result is ``lim`` at p = r and the
    expression with p replaced by a harmless value there elsewhere (so neither branch is 0/0 and no NaN
    reaches a gradient): ``Piecewise((lim, Eq(p, r)), (expr(p -> Piecewise((r + 1, Eq(p, r)), (p, True))),
    True))``. Returns the expression and the patched points ('a = 0')."""
    done: list[str] = []
    for p in params:
        dens = {b for b, e in (t.as_base_exp() for t in expr.atoms(sp.Pow))
                if e.is_negative and b.has(p) and not b.has(x)}
        for d in sorted(dens, key=sp.default_sort_key):
            for r in _real_roots(d, p) or []:
                if r.free_symbols or r.is_real is not True:
                    continue
                plain = _plain(expr)
                try:
                    with time_budget(LIMIT_SECONDS):
                        left = sp.limit(plain, p, r, "-")
                        right = sp.limit(plain, p, r, "+")
                        if left.has(sp.oo, -sp.oo, sp.zoo, sp.nan, sp.Limit) or sp.simplify(left - right) != 0:
                            continue
                except _ANALYSIS_ERRORS:
                    continue
                safe = sp.Piecewise((r + 1, sp.Eq(p, r)), (p, True))
                expr = sp.Piecewise((stabilize(left), sp.Eq(p, r)), (expr.xreplace({p: safe}), True))
                done.append(f"{p} = {r}")
    return expr, done


# --------------------------------------------------------------------------------------------------------
# Hazards: poles and undefined regions that depend on parameters
# --------------------------------------------------------------------------------------------------------


def _domain_checks(value: sp.Expr, x: sp.Symbol) -> list[tuple[str, sp.Expr]]:
    """(kind, g) pairs: the branch is undefined where g(x) < 0 (log: where g <= 0)."""
    from actsym.functions import log1p

    out = [("log-domain", f.args[0]) for f in value.atoms(sp.log) if f.args[0].has(x)]
    out += [("log-domain", 1 + f.args[0]) for f in value.atoms(log1p) if f.args[0].has(x)]
    out += [
        ("sqrt-domain", p.base)
        for p in value.atoms(sp.Pow)
        if p.base.has(x) and p.exp.is_Rational and not p.exp.is_Integer and p.exp.q % 2 == 0
    ]
    return out


def find_hazards(expr: sp.Expr, x: sp.Symbol) -> list[dict]:
    """Poles and undefined regions of each branch inside the region where the branch is selected.

    Each hazard is a dict with ``kind`` ('pole', 'log-domain', 'sqrt-domain'), ``branch`` (where the branch
    is selected), ``at`` (where it happens), ``when`` (condition on the parameters; 'True' = always) and
    ``safe`` (the parameter range without the hazard, or 'none').
    """
    hazards = []
    previous: list[sp.Basic] = []
    for value, raw in branches(expr):
        cond = sp.And(raw, *[sp.Not(c) for c in previous])
        previous.append(raw)
        for d in _x_denominators(value, x):
            for r in _real_roots(d, x) or []:
                when = _condition_at(cond, x, r)
                if when is sp.false:
                    continue
                if not r.free_symbols and _finite_limit(value, x, r):
                    continue  # removable: patched by patch_removable
                hazards.append(_hazard("pole", cond, f"x = {r}", when))
        for kind, g in _domain_checks(value, x):
            if not (g.free_symbols - {x}):
                rel = g <= 0 if kind == "log-domain" else g < 0
                try:
                    with time_budget(LIMIT_SECONDS):
                        bad = sp.solve_univariate_inequality(rel, x, relational=False)
                        region = sp.S.Reals if cond is sp.true else cond.as_set()
                        bad = sp.Intersection(bad, region)
                except _ANALYSIS_ERRORS:
                    bad = None
                if bad is not None and bad is not sp.S.EmptySet:
                    hazards.append(_hazard(kind, cond, f"x in {bad}", sp.true))
                continue
            for r in _real_roots(g, x) or []:
                when = _condition_at(cond, x, r)
                if when is not sp.false:
                    hazards.append(_hazard(kind, cond, f"x on one side of {r}", when))
    return hazards


def _hazard(kind: str, branch: sp.Basic, at: str, when: sp.Basic) -> dict:
    if when is sp.true:
        safe = "none"
    else:
        try:
            with time_budget(LIMIT_SECONDS):
                safe = str(sp.simplify(sp.Not(when)))
        except _ANALYSIS_ERRORS:
            safe = f"not ({when})"
    return {"kind": kind, "branch": str(branch), "at": at, "when": str(when), "safe": safe}

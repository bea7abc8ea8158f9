"""A guard around the implementation under test: what a bad implementation does becomes a clear
failure of the example it happened in, never a hung or crashed run.

- **Time limit** per call into the implementation (``--impl-timeout``, default 60 s; a SIGALRM
  timer, so only in the main thread of a POSIX process, which is where pytest and pytest-xdist's
  workers run tests). A call that overruns raises :class:`ImplementationTimeout`; later calls of
  the same sampler fail at once with the same error, so one hanging sampler costs one time limit,
  and the run completes with its report. (A hang inside one C call is interrupted when it returns
  to Python.)
- **Contract checks**: what ``build``, ``step``, ``model_input``, ``sample``, ``guidance_rescale`` and
  ``quantize`` return is checked for type and shape; a violation is a :class:`ContractError`
  naming the method (a TypeError, so no declared deviation can excuse it).
- **Warnings** raised inside the implementation's own calls are captured there: deprecation
  notices (diffusers emits thousands) are counted in :data:`WARNINGS`, not shown; any other warning
  is re-emitted, so a check that asks whether the implementation warns still sees it.
"""

from __future__ import annotations

import signal
import threading
import warnings
from collections import Counter
from contextlib import contextmanager

import numpy as np

from .contract import STATES, Unsupported, is_loop_level

DEFAULT_TIMEOUT = 60.0

#: deprecation notices raised inside the implementation's calls: (category, first line) -> count
WARNINGS: Counter = Counter()
_QUIET = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class ContractError(TypeError):
    """The implementation returned something the contract (properties/contract.py) does not allow."""


class ImplementationTimeout(BaseException):
    """A call into the implementation ran past the time limit.

    A BaseException, not an Exception: Hypothesis then does not shrink or replay the example (each
    replay would cost another time limit); the test fails on the configuration that hung, which
    the report shows from the test's record."""


_HUNG: dict[str, str] = {}
_depth = [0]


@contextmanager
def _time_limit(seconds: float, what: str, key: str):
    if key in _HUNG:
        raise ImplementationTimeout(f"{what}: not run: this sampler already ran past the time limit "
                                    f"({_HUNG[key]})")
    usable = (seconds and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread() and _depth[0] == 0)
    if not usable:
        _depth[0] += 1
        try:
            yield
        finally:
            _depth[0] -= 1
        return

    def _expired(signum, frame):
        _HUNG[key] = f"{what} exceeded {seconds:g} s"
        raise ImplementationTimeout(f"{what} ran past the time limit of {seconds:g} s (--impl-timeout)")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call(guard, what: str, key: str, fn, *args, **kwargs):
    """fn(*args) under the time limit, with its warnings captured."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _time_limit(guard.timeout, what, key):
            result = fn(*args, **kwargs)
    for w in caught:
        if issubclass(w.category, _QUIET):
            WARNINGS[(w.category.__name__, str(w.message).splitlines()[0][:160] if str(w.message) else "")] += 1
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return result


def _array(value, method: str, shape=None, name: str = "the result"):
    if not isinstance(value, np.ndarray):
        raise ContractError(f"{method} must return a float64 NumPy array as {name}; got {type(value).__name__}")
    if shape is not None and value.shape != tuple(shape):
        raise ContractError(f"{method} returned {name} of shape {value.shape}; the input's shape is {tuple(shape)}")
    return value


def _vector(sampler, attr: str, method: str, optional: bool):
    value = getattr(sampler, attr, None)
    if value is None:
        if optional:
            return
        raise ContractError(f"{method} returned a sampler without {attr!r}")
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        kind = type(value).__name__ if not isinstance(value, np.ndarray) else f"an array of shape {value.shape}"
        raise ContractError(f"{method} returned a sampler whose {attr} is {kind}, not a 1-D NumPy array")


class GuardedSampler:
    """A sampler whose step and model_input are timed, checked and have their warnings captured."""

    def __init__(self, guard, sampler, key: str, label: str):
        self._guard, self._sampler, self._key, self._label = guard, sampler, key, label
        method = f"{label}.build(...)"
        #: loop-level (it has sample(), properties/contract.py) or step-level (step and model_input)
        self.loop_level = is_loop_level(sampler)
        if not self.loop_level:
            for name in ("step", "model_input"):
                if not callable(getattr(sampler, name, None)):
                    raise ContractError(f"{method} returned a sampler with neither a sample() method (loop "
                                        f"level) nor a {name}() method (step level)")
        _vector(sampler, "timesteps", method, optional=False)
        _vector(sampler, "alphas_cumprod", method, optional=True)
        _vector(sampler, "sigmas", method, optional=True)
        if getattr(sampler, "alphas_cumprod", None) is None and getattr(sampler, "sigmas", None) is None:
            raise ContractError(f"{method} returned a sampler with neither alphas_cumprod nor sigmas (its levels)")
        if getattr(sampler, "state", None) not in STATES:
            raise ContractError(f"{method} returned a sampler whose state is {getattr(sampler, 'state', None)!r}, "
                                f"not one of {STATES} (declare it: the suite scales states by it)")

    def __getattr__(self, attr):
        return getattr(self._sampler, attr)

    def model_input(self, i, x):
        what = f"{self._label} sampler.model_input(i={i})"
        out = _call(self._guard, what, self._key, self._sampler.model_input, i, x)
        return _array(out, what, np.shape(x))

    def sample(self, x, denoiser, noise, start=0, stop=None):
        what = f"{self._label} sampler.sample(start={start}, stop={stop})"
        out = _call(self._guard, what, self._key, self._sampler.sample, x, denoiser, noise, start, stop)
        return _array(out, what, np.shape(x), "the state at the level of step stop")

    def step(self, i, x, model_output, seed, predicted_variance=None):
        what = f"{self._label} sampler.step(i={i})"
        out = _call(self._guard, what, self._key, self._sampler.step, i, x, model_output, seed, predicted_variance)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ContractError(f"{what} must return (x_next, z); got {type(out).__name__}"
                                + (f" of length {len(out)}" if isinstance(out, tuple | list) else ""))
        _array(out[0], what, np.shape(x), "x_next")
        _array(out[1], what, np.shape(x), "z (the noise drawn)")
        return out


    # optional training-side methods (properties/conformance/training.py)
    def _optional(self, name: str, shape, *args):
        fn = getattr(self._sampler, name, None)
        if fn is None:
            raise Unsupported(f"the {self._label} sampler has no {name}() (optional training-side method)")
        what = f"{self._label} sampler.{name}"
        return _array(_call(self._guard, what, self._key, fn, *args), what, shape)

    def add_noise(self, x0, eps, t):
        return self._optional("add_noise", np.shape(x0), x0, eps, t)

    def add_noise_in_loop(self, x0, eps, begin, steps_taken):
        return self._optional("add_noise_in_loop", np.shape(x0), x0, eps, begin, steps_taken)

    def velocity(self, x0, eps, t):
        return self._optional("velocity", np.shape(x0), x0, eps, t)


class Guarded:
    """The implementation under test behind the guard; attributes pass through unchanged."""

    def __init__(self, impl, timeout: float = DEFAULT_TIMEOUT):
        self._impl, self.timeout = impl, timeout
        self._generic = None

    def __getattr__(self, attr):
        return getattr(self._impl, attr)

    def __repr__(self):
        return repr(self._impl)

    @property
    def wrapped(self):
        return self._impl

    def _build_with(self, build, config, label: str, key: str):
        smp = _call(self, f"{label}.build({config.sampler})", key, build, config)
        return GuardedSampler(self, smp, key, label)

    def build(self, config):
        return self._build_with(self._impl.build, config, "implementation", config.sampler)

    def guidance_rescale(self, x_cfg, x_pos, guidance_rescale):
        what = "implementation.guidance_rescale"
        out = _call(self, what, "guidance", self._impl.guidance_rescale, x_cfg, x_pos, guidance_rescale)
        return _array(out, what, np.shape(x_cfg))

    def _optional(self, name: str, config, *args):
        fn = getattr(self._impl, name, None)
        if fn is None:
            raise Unsupported(f"the implementation has no {name}() (optional training-side method)")
        what = f"implementation.{name}"
        return _array(_call(self, what, config.sampler, fn, config, *args), what, np.shape(args[0]))

    def training_snr(self, config, t):
        return self._optional("training_snr", config, t)

    def min_snr_weights(self, config, t, gamma):
        return self._optional("min_snr_weights", config, t, gamma)

    def quantize(self, x):
        out = self._impl.quantize(x)
        return _array(out, "implementation.quantize", np.shape(x))

    def generic_samplers(self):
        if self._generic is None:
            found = getattr(self._impl, "generic_samplers", dict)()
            self._generic = {name: self._generic_factory(name, factory) for name, factory in found.items()}
        return self._generic

    def _generic_factory(self, name, factory):
        def build(config):
            return self._build_with(factory, config, name, name)
        return build


#: attributes every implementation must have (properties/contract.py)
REQUIRED = ("build", "guidance_rescale", "quantize", "unit_roundoff")


def missing_attributes(impl) -> list[str]:
    return [a for a in REQUIRED if not hasattr(impl, a)]

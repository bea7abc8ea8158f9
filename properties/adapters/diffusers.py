"""diffusers' schedulers behind zsnr's contract (:mod:`properties.contract`).

A repository that subclasses or forks diffusers' schedulers tests its own classes with::

    from properties.adapters.diffusers import DiffusersImplementation
    impl = DiffusersImplementation(ddim=MyDDIMScheduler, guidance_rescale=my_rescale_noise_cfg)

and ``pytest --pyargs properties.conformance --impl my_pkg.my_adapter:impl``. A replacement that
subclasses diffusers' class inherits that class's declared deviations (the report says which
still hold and which the subclass fixed); one that does not starts with none.

Defaults differ from diffusers' in one place users compare: a configuration that leaves
``beta_start`` / ``beta_end`` unset gets zsnr's default range (``reference.schedules.
DEFAULT_BETA_RANGE``): Stable Diffusion's 0.00085..0.012 for ``scaled_linear``, where diffusers'
own constructor default is DDPM's 0.0001..0.02 for every schedule. The adapter passes zsnr's range
explicitly, so both sides compute the same schedule. ``DDIMScheduler(beta_schedule="scaled_linear")``
built by hand is another schedule: at T = 1000, without rescale, its σ at t = T-1 is 36.91, while
``reference.make_schedule("scaled_linear", 1000)`` gives 14.61.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect

import numpy as np
import torch

from ..contract import OFF_OPTIONS, SAMPLERS, SamplerConfig, Unsupported

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64}

#: which beta schedules each diffusers class implements ("sigmoid" is DDPM-only)
_SCHEDULES = {
    "ddpm": ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"),
    "ddim": ("linear", "scaled_linear", "squaredcos_cap_v2"),
    "euler": ("linear", "scaled_linear", "squaredcos_cap_v2"),
    "euler_ancestral": ("linear", "scaled_linear", "squaredcos_cap_v2"),
}


#: the σ-schedule and thresholding options, passed to the constructor under diffusers' own names,
#: and their defaults (a configuration that sets another value on a class without the option is
#: Unsupported)
_OPTION_DEFAULTS = {**OFF_OPTIONS, "final_sigmas_type": "zero", "dynamic_thresholding_ratio": 0.995,
                    "sample_max_value": 1.0}
_SIGMA_AND_THRESHOLD_OPTIONS = tuple(_OPTION_DEFAULTS)


def _default_classes():
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
    )
    return {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler,
            "euler_ancestral": EulerAncestralDiscreteScheduler}


@functools.cache
def diffusers_version() -> str:
    """The installed diffusers release (e.g. "0.42.1")."""
    import diffusers

    return diffusers.__version__


def _release_at_least(spec: str) -> bool:
    from packaging.version import Version

    return Version(diffusers_version()) >= Version(spec)


#: where each diffusers release keeps rescale_noise_cfg: diffusers.guiders from 0.35 on; before,
#: only in the pipelines, whose modules import transformers
_RESCALE_NOISE_CFG_HOMES = ("diffusers.guiders.guider_utils",
                            "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion")


def _default_rescale_noise_cfg():
    """diffusers' own rescale_noise_cfg, imported from where the installed release has it, or
    Unsupported with the reason (before 0.35 it lives in the pipelines, which need transformers)."""
    import importlib

    reasons = []
    for home in _RESCALE_NOISE_CFG_HOMES:
        try:
            module = importlib.import_module(home)
        except ImportError as exc:  # the module is not in this release, or needs transformers
            reasons.append(f"{home}: {type(exc).__name__}: {exc}")
            continue
        fn = getattr(module, "rescale_noise_cfg", None)
        if fn is not None:
            return fn
        reasons.append(f"{home} has no rescale_noise_cfg")
    raise Unsupported(f"diffusers {diffusers_version()} has no importable rescale_noise_cfg ("
                      + "; ".join(reasons) + ")")


def _f64(t) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


@functools.cache
def _parameters(fn) -> dict:
    """inspect.signature(fn).parameters, once per function (per scheduler class, not per example)."""
    return dict(inspect.signature(fn).parameters)


def _compute_snr():
    try:
        from diffusers.training_utils import compute_snr
    except ImportError as exc:  # not in this release, or its module needs what is not installed
        raise Unsupported(f"diffusers {diffusers_version()}: no diffusers.training_utils.compute_snr "
                          f"({type(exc).__name__}: {exc})") from None
    return compute_snr


#: options each sampler's class has in later releases (named at start where the installed class
#: lacks them; what skips the configurations that set them is _accepted, from the signature)
_VP_OPTIONS = ("rescale_betas_zero_snr", "timestep_spacing", "thresholding")
_RELEASE_OPTIONS = {
    "ddpm": _VP_OPTIONS, "ddim": _VP_OPTIONS,
    "euler": ("rescale_betas_zero_snr", "timestep_spacing", "final_sigmas_type", "timestep_type",
              "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"),
    "euler_ancestral": ("rescale_betas_zero_snr", "timestep_spacing"),
}

#: the generic samplers that zsnr's declared deviations name, or that 0.42 has
_GENERIC_NAMES = ("CogVideoXDDIMScheduler", "CogVideoXDPMScheduler", "DDIMParallelScheduler", "DDIMScheduler",
                  "DDPMParallelScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler",
                  "EulerAncestralDiscreteScheduler", "EulerDiscreteScheduler", "LCMScheduler", "TCDScheduler",
                  "UniPCMultistepScheduler")

#: options passed to step() (every other option of a configuration goes to the constructor)
_STEP_OPTIONS = ("eta", "use_clipped_model_output", "s_churn", "s_tmin", "s_tmax", "s_noise")


def _not_accepted(cls, where: str, name: str, value) -> str:
    return (f"{cls.__name__}.{where} of diffusers {diffusers_version()} takes no {name!r}: "
            f"{name}={value!r} cannot be tested on this release")


#: options whose introduction kept the earlier fixed behaviour as their default: a class without
#: the option computes exactly that value. final_sigmas_type (EulerDiscrete, 0.28): before it,
#: set_timesteps always appended σ = 0 (``torch.cat([sigmas, torch.zeros(1)])``), which "zero" keeps.
#: The σ-schedule and thresholding options' defaults likewise: a class without them (Euler ancestral
#: has no σ schedules) computes their default.
_ABSENT_MEANS = _OPTION_DEFAULTS


def _is_off(name: str, value) -> bool:
    """Whether an option's value is what a class without the option computes: off (None, False,
    0) or the earlier behaviour its introduction kept (``_ABSENT_MEANS``)."""
    if value is None or value is False or (type(value) is int and value == 0):
        return True
    return name in _ABSENT_MEANS and value == _ABSENT_MEANS[name]


def _accepted(cls, kw: dict) -> dict:
    """The constructor arguments, checked against the installed class's signature (read once per
    class): an option it does not take is Unsupported with the reason, never dropped. Only an
    option whose value is what a class without it computes (``_is_off``) is left out."""
    params = _parameters(cls.__init__)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(kw)  # a replacement taking **kwargs passes them on
    for name, value in kw.items():
        if name not in params and not _is_off(name, value):
            raise Unsupported(_not_accepted(cls, "__init__", name, value))
    return {k: v for k, v in kw.items() if k in params}


class ThresholdRankCrash(TypeError):
    """diffusers' TypeError from dynamic thresholding of a 2-D sample (declared deviation
    threshold-2d-sample-crash): raised only for a thresholded step on a 2-D sample, so a TypeError
    anywhere else (another rank, another option) stays an ordinary error."""


class DiffusersSampler:
    """One diffusers scheduler, configured and with timesteps set.

    ``scheduler``: an already configured scheduler with its timesteps set (a copy of a pristine one
    from the implementation's cache), used instead of constructing ``cls`` again.
    """

    def __init__(self, impl: DiffusersImplementation, cls, config: SamplerConfig, init_kwargs: dict,
                 scheduler=None):
        self.impl, self.config = impl, config
        if scheduler is None:
            try:
                scheduler = cls(**init_kwargs)
                self.scheduler = scheduler
                self._set_timesteps()
            except NotImplementedError as exc:
                raise Unsupported(f"{cls.__name__}: {exc}") from None
        self.scheduler = s = scheduler
        params = _parameters(type(s).step)
        required = [n for n, p in params.items() if p.default is inspect.Parameter.empty
                    and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
        if set(required) - {"model_output", "timestep", "sample"}:
            raise Unsupported(f"{cls.__name__}.step needs more than (model_output, timestep, sample): {required}")
        self._step_params = params
        # a step taking **kwargs (a subclass passing them on to diffusers') gets every option
        self._takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for name in _STEP_OPTIONS:  # a step option this release's step() lacks: never dropped
            if config.option(name) is not None and not (name in params or self._takes_any):
                raise Unsupported(_not_accepted(type(s), "step", name, config.option(name)))
        self._takes_generator = "generator" in params or self._takes_any
        self.alphas_cumprod = _f64(s.alphas_cumprod) if hasattr(s, "alphas_cumprod") else None
        self.timesteps = _f64(s.timesteps)
        self.sigmas = _f64(s.sigmas) if getattr(s, "sigmas", None) is not None else None
        # the Euler family scales its state by √(σ²+1) (init_noise_sigma ≠ 1); DPM-Solver etc. do not
        self.state = "ve" if self.sigmas is not None and float(s.init_noise_sigma) != 1.0 else "vp"
        #: where the scheduler stands: None (timesteps just set), ("begin", i) (set_begin_index(i)
        #: since), i (its step index initialised at i, nothing stepped), "stepped"
        self._at = None

    def _set_timesteps(self):
        """set_timesteps as pipelines call it: on the device the latents live on."""
        s = self.scheduler
        on_device = "device" in _parameters(type(s).set_timesteps)
        s.set_timesteps(self.config.num_inference_steps, **({"device": self.impl.device} if on_device else {}))

    def _tensor(self, x):
        return torch.as_tensor(np.asarray(x, np.float64)).to(self.impl.device, self.impl.torch_dtype)

    def _reset(self, i):
        """Put the scheduler at step index i using public API only: set_begin_index(i) on a
        scheduler whose timesteps were just set; set_timesteps again only once it was stepped or
        positioned elsewhere (the same state as set_timesteps + set_begin_index before every call)."""
        s = self.scheduler
        if self._at in (i, ("begin", i)):
            return
        if not hasattr(s, "set_begin_index"):
            if not hasattr(s, "step_index"):
                return  # a scheduler that keeps no position (DDPM, DDIM): each step reads its timestep
            # diffusers < 0.27 (no set_begin_index): after set_timesteps the first step() or
            # scale_model_input() finds its step index by looking its timestep up in the timesteps
            # (the second match if it occurs twice), which is step i only where timesteps[i] is unique
            matches = np.flatnonzero(self.timesteps == self.timesteps[i])
            found = int(matches[1] if matches.size > 1 else matches[0])
            if found != i:
                raise Unsupported(f"{type(s).__name__} (diffusers {diffusers_version()}) has no "
                                  f"set_begin_index (added in 0.27): it locates step {i} by its timestep "
                                  f"{self.timesteps[i]:g}, which is step {found}")
            if self._at is not None:
                self._set_timesteps()
            self._at = ("begin", i)
            return
        if self._at is not None:
            self._set_timesteps()
        s.set_begin_index(i)
        self._at = ("begin", i)

    def model_input(self, i, x):
        if self.state == "vp":
            return np.asarray(x, np.float64)
        self._reset(i)
        t = self.scheduler.timesteps[i]
        out = _f64(self.scheduler.scale_model_input(self._tensor(x), t))
        if self._at == ("begin", i):
            self._at = i
        return out

    def step(self, i, x, model_output, seed, predicted_variance=None):
        s, cfg = self.scheduler, self.config
        self._reset(i)
        out = self._tensor(model_output)
        if predicted_variance is not None:
            out = torch.cat([out, self._tensor(predicted_variance)], dim=1)
        kwargs = {name: cfg.option(name) for name in _STEP_OPTIONS if cfg.option(name) is not None}
        if self._takes_generator:
            kwargs["generator"] = torch.Generator(device=self.impl.device).manual_seed(seed)
        sample = self._tensor(x)
        if self.state == "ve":
            s.scale_model_input(sample, s.timesteps[i])  # as pipelines do before step()
        self._at = "stepped"
        try:
            prev = s.step(out, s.timesteps[i], sample, return_dict=False, **kwargs)[0]
        except NotImplementedError as exc:
            raise Unsupported(f"{type(s).__name__}.step: {exc}") from None
        except TypeError as exc:
            if cfg.option("thresholding", False) and sample.ndim == 2:  # the declared threshold-2d-sample-crash
                raise ThresholdRankCrash(f"{type(s).__name__}.step with thresholding on a 2-D sample "
                                         f"{tuple(sample.shape)}: TypeError: {exc}") from exc
            raise
        # the standard normal diffusers' randn_tensor draws from this seed (bit-exact for one generator)
        z = torch.randn(sample.shape, generator=torch.Generator(device=self.impl.device).manual_seed(seed),
                        device=self.impl.device, dtype=self.impl.torch_dtype)
        return _f64(prev), _f64(z)

    # --- training side (optional contract methods, properties/conformance/training.py) ---------

    def _timestep_tensor(self, t):
        t = np.asarray(t, np.float64)
        if self.state == "vp":
            return torch.as_tensor(t.astype(np.int64), device=self.impl.device)
        return torch.as_tensor(t, device=self.impl.device).to(self.scheduler.timesteps.dtype)

    def add_noise(self, x0, eps, t):
        """``scheduler.add_noise`` as training and img2img call it (no sampling begun)."""
        self._set_timesteps()  # resets begin_index / step_index: the timestep-lookup path
        self._at = None
        return _f64(self.scheduler.add_noise(self._tensor(x0), self._tensor(eps), self._timestep_tensor(t)))

    def add_noise_in_loop(self, x0, eps, begin, steps_taken):
        """``add_noise`` as diffusers' img2img / inpainting pipelines call it while sampling: begin
        index set, ``steps_taken`` steps taken, then the timestep of the current step."""
        s = self.scheduler
        if self.state == "ve" and not hasattr(s, "set_begin_index"):
            raise Unsupported(f"{type(s).__name__} (diffusers {diffusers_version()}) has no set_begin_index "
                              "(added in 0.27): the img2img path of this release does not set a begin index")
        self._set_timesteps()
        if hasattr(s, "set_begin_index"):
            s.set_begin_index(begin)
        shape = np.shape(x0)
        zeros = self._tensor(np.zeros(shape))
        sample = zeros
        self._at = "stepped"  # the next step() starts from set_timesteps again
        # VP schedulers' add_noise reads no sampling state; the Euler family's reads step_index
        for j in range(begin, begin + steps_taken) if self.state == "ve" else ():
            t = s.timesteps[j]
            s.scale_model_input(sample, t)
            kwargs = {"generator": torch.Generator(device=self.impl.device).manual_seed(j)} \
                if self._takes_generator else {}
            sample = s.step(zeros, t, sample, return_dict=False, **kwargs)[0]
        t_now = s.timesteps[begin + steps_taken].reshape(1).repeat(shape[0])
        return _f64(s.add_noise(self._tensor(x0), self._tensor(eps), t_now))

    def velocity(self, x0, eps, t):
        """``scheduler.get_velocity(sample, noise, timesteps)`` (the v target)."""
        if not hasattr(self.scheduler, "get_velocity"):
            raise Unsupported(f"{type(self.scheduler).__name__} has no get_velocity "
                              f"(diffusers {diffusers_version()})")
        self._set_timesteps()
        self._at = None
        return _f64(self.scheduler.get_velocity(self._tensor(x0), self._tensor(eps), self._timestep_tensor(t)))


class DiffusersImplementation:
    """diffusers' DDPM, DDIM, Euler and Euler-ancestral schedulers and ``rescale_noise_cfg``.

    Pass replacement classes (same constructor and ``step`` as diffusers') to test your own:
    ``DiffusersImplementation(ddim=MyDDIM, guidance_rescale=my_rescale)``. A replacement that
    subclasses diffusers' class keeps its declared deviations (``subclassed``,
    ``inherited_deviations``); any other replacement starts with none. ``dtype`` is the dtype
    of the latents and model outputs (float32, float16, bfloat16); ``device`` e.g. "cuda".
    ``deviations`` replaces the declared known deviations (default: diffusers' own, see
    :mod:`properties.adapters.diffusers_deviations`, kept for the samplers not replaced).
    """

    name = "diffusers"

    #: diffusers computes every schedule in float32, whatever the latents' dtype
    schedule_unit_roundoff = 2.0**-24
    #: the dtype the declared deviations were confirmed in (their examples must reproduce there)
    deviations_dtype = "float32"

    def __init__(self, ddpm=None, ddim=None, euler=None, euler_ancestral=None, guidance_rescale=None,
                 dtype: str = "float32", device: str = "cpu", deviations=None):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {tuple(_DTYPES)}; got {dtype!r}")
        defaults = _default_classes()
        self.classes = dict(defaults)
        replacements = {"ddpm": ddpm, "ddim": ddim, "euler": euler, "euler_ancestral": euler_ancestral}
        for key, cls in replacements.items():
            if cls is None:
                continue
            if not inspect.isclass(cls):
                raise TypeError(f"{key} must be a scheduler class (a replacement of diffusers' "
                                f"{defaults[key].__name__}); got {cls!r}")
            self.classes[key] = cls
        #: samplers served by a subclass of diffusers' own class: sampler -> that class's name
        self.subclassed = {k: defaults[k].__name__ for k, c in replacements.items()
                           if c is not None and c is not defaults[k] and issubclass(c, defaults[k])}
        replaced = {k for k, c in replacements.items() if c is not None and c is not defaults[k]} - set(self.subclassed)
        self._rescale = guidance_rescale  # None: diffusers' own, imported at first use
        #: ids of declared deviations kept because a replacement subclasses diffusers' class: their
        #: example runs on the subclass (or every sampler they name is one), so an example that no
        #: longer reproduces was fixed by the subclass
        self.inherited_deviations: frozenset[str] = frozenset()
        self._pristine: dict = {}  # (class, configuration) -> pristine scheduler (or its refusal)
        self._generic: dict | None = None
        if deviations is None:
            deviations = self._own_deviations(replaced, guidance_rescale is not None)
        self.deviations = list(deviations)
        self.dtype, self.torch_dtype, self.device = dtype, _DTYPES[dtype], device
        #: the installed diffusers release: declared deviations with a release range apply only in it
        self.version = diffusers_version()
        info = torch.finfo(self.torch_dtype)
        self.unit_roundoff = float(info.eps) / 2
        self.smallest_subnormal = float(info.smallest_normal) * float(info.eps)

    def _own_deviations(self, replaced: set, guidance_replaced: bool) -> list:
        """diffusers' declared deviations for the samplers still served by diffusers' classes or by
        subclasses of them (which inherit them); a replacement that is not a subclass starts with
        none. A deviation is narrowed to the samplers it still applies to; one whose example's
        sampler was replaced by a non-subclass keeps no example (its strict reproduction would run
        on code it was not declared for)."""
        from .diffusers_deviations import (
            DEVIATIONS,
            GENERIC_DEVIATIONS,
            GUIDANCE_DEVIATIONS,
            HALF_DEVIATIONS,
            TRAINING_DEVIATIONS,
        )

        version = diffusers_version()
        kept, inherited = [], set()
        for d in DEVIATIONS + HALF_DEVIATIONS + TRAINING_DEVIATIONS:
            if not d.in_releases(version):
                continue
            samplers = tuple(s for s in d.samplers if s not in replaced)
            if not samplers:
                continue
            if samplers != d.samplers:
                example = d.example if d.example is None or d.example.sampler in samplers else None
                d = dataclasses.replace(d, samplers=samplers, example=example)
            on_subclass = set(samplers) & set(self.subclassed)
            if on_subclass and (set(samplers) <= set(self.subclassed)
                                or (d.example is not None and d.example.sampler in self.subclassed)):
                inherited.add(d.id)
            kept.append(d)
        self.inherited_deviations = frozenset(inherited)
        guidance = [] if guidance_replaced else [d for d in GUIDANCE_DEVIATIONS if d.in_releases(version)]
        return kept + guidance + self._generic_deviations(GENERIC_DEVIATIONS, version)

    def _generic_deviations(self, declared, version) -> list:
        """The generic samplers' deviations, narrowed to the scheduler classes this release has (an
        older release may lack TCDScheduler, or a class may take rescale_betas_zero_snr only later);
        one whose example's class is missing keeps no example."""
        names = set(self.generic_samplers())
        out = []
        for d in declared:
            if not d.in_releases(version):
                continue
            samplers = tuple(s for s in d.samplers if s in names)
            if not samplers:
                continue
            if samplers != d.samplers:
                example = d.example if d.example is None or d.example.sampler in samplers else None
                d = dataclasses.replace(d, samplers=samplers, example=example)
            out.append(d)
        return out

    def limitations(self) -> list[str]:
        """What this diffusers release cannot be tested for, one line each (printed at start by
        ``python -m properties``): samplers, methods and options the installed classes lack."""
        out = []
        for key, cls in self.classes.items():
            params = _parameters(cls.__init__)
            methods = {m for m in dir(cls) if callable(getattr(cls, m, None))}
            lacks = [n for n in _RELEASE_OPTIONS.get(key, ()) if n not in params]
            if lacks and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                kept = [f"{n}={_ABSENT_MEANS[n]!r}" for n in lacks if n in _ABSENT_MEANS]
                out.append(f"{key} ({cls.__name__}): no option {', '.join(lacks)}: configurations "
                           "setting them are skipped" + (f" (except {', '.join(kept)}, which is what "
                                                         "the class computes)" if kept else ""))
            missing = [m for m in ("set_begin_index", "get_velocity", "add_noise") if m not in methods]
            if key in ("ddpm", "ddim"):
                missing = [m for m in missing if m != "set_begin_index"]  # VP: no sampling position
            if missing:
                out.append(f"{key} ({cls.__name__}): no {', '.join(missing)}(): the properties that "
                           "need them are skipped")
        if self._rescale is None:
            try:
                self._rescale = _default_rescale_noise_cfg()
            except Unsupported as exc:
                out.append(f"guidance: skipped: {exc}")
        try:
            from diffusers.training_utils import compute_snr  # noqa: F401
        except ImportError as exc:
            out.append(f"training_snr, min_snr: skipped: diffusers.training_utils.compute_snr: {exc}")
        absent = sorted(set(_GENERIC_NAMES) - set(self.generic_samplers()))
        if absent:
            out.append(f"generic samplers not in this release (or not taking rescale_betas_zero_snr): "
                       f"{', '.join(absent)}")
        return [f"diffusers {diffusers_version()}: {line}" for line in out]

    def __repr__(self):
        names = ", ".join(f"{k}={v.__name__}" for k, v in self.classes.items())
        return f"DiffusersImplementation({names}, dtype={self.dtype!r}, device={self.device!r})"

    def quantize(self, x):
        return _f64(torch.as_tensor(np.asarray(x, np.float64)).to(self.torch_dtype))

    def _init_kwargs(self, cls, cfg: SamplerConfig) -> dict:
        kw = {"num_train_timesteps": cfg.num_train_timesteps, "beta_schedule": cfg.beta_schedule,
                  "prediction_type": cfg.prediction_type, "timestep_spacing": cfg.spacing,
                  "steps_offset": cfg.steps_offset, "rescale_betas_zero_snr": cfg.rescale}
        if cfg.beta_start is not None:
            kw["beta_start"] = cfg.beta_start
        if cfg.beta_end is not None:
            kw["beta_end"] = cfg.beta_end
        if cfg.beta_schedule in ("linear", "scaled_linear", "sigmoid"):
            # diffusers' defaults are DDPM's range for every schedule; zsnr's scaled_linear default is SD's
            from reference.schedules import DEFAULT_BETA_RANGE
            kw.setdefault("beta_start", DEFAULT_BETA_RANGE[cfg.beta_schedule][0])
            kw.setdefault("beta_end", DEFAULT_BETA_RANGE[cfg.beta_schedule][1])
        params = _parameters(cls.__init__)
        for name in ("variance_type", "clip_sample", "set_alpha_to_one", "interpolation_type",
                     *_SIGMA_AND_THRESHOLD_OPTIONS):
            value = cfg.option(name)
            if name == "clip_sample" and value is None and name in params:
                value = False  # diffusers defaults to True; zsnr's configurations say it
            if value is not None:
                kw[name] = value
        return _accepted(cls, kw)

    def build(self, config: SamplerConfig) -> DiffusersSampler:
        if config.sampler not in SAMPLERS:
            raise Unsupported(f"no diffusers sampler for {config.sampler!r}")
        if config.beta_schedule not in _SCHEDULES[config.sampler]:
            raise Unsupported(f"diffusers {config.sampler} has no beta_schedule {config.beta_schedule!r}")
        if config.sampler == "euler_ancestral" and config.option("eta", 1.0) != 1.0:
            raise Unsupported("diffusers' EulerAncestralDiscreteScheduler has no eta (it is 1)")
        if config.sampler == "euler_ancestral" and config.prediction_type == "sample":
            raise Unsupported("diffusers' EulerAncestralDiscreteScheduler does not implement prediction_type='sample'")
        if config.num_inference_steps > config.num_train_timesteps:
            raise Unsupported("S > T")
        cls = self.classes[config.sampler]
        return self._sampler(cls, config, DiffusersSampler)

    _CACHE_SIZE = 1024

    def _sampler(self, cls, config: SamplerConfig, make):
        """A sampler for (cls, config): built once, then a deep copy of the pristine scheduler (timesteps
        set, never stepped) for every later build of the same configuration -- the same state as a
        fresh construction, without re-running the constructor and set_timesteps. A configuration
        the class refuses is refused again with the same reason."""
        key = (cls, config)
        hit = self._pristine.get(key)
        if isinstance(hit, Unsupported):
            raise Unsupported(*hit.args)
        if hit is not None:
            return DiffusersSampler(self, cls, config, {}, scheduler=copy.deepcopy(hit))
        if len(self._pristine) >= self._CACHE_SIZE:
            self._pristine.pop(next(iter(self._pristine)))
        try:
            smp = make(self, cls, config, self._init_kwargs(cls, config))
        except Unsupported as exc:
            self._pristine[key] = exc
            raise
        self._pristine[key] = copy.deepcopy(smp.scheduler)
        return smp

    def guidance_rescale(self, x_cfg, x_pos, guidance_rescale):
        if self._rescale is None:
            self._rescale = _default_rescale_noise_cfg()
        cfg = torch.as_tensor(np.asarray(x_cfg, np.float64)).to(self.device, self.torch_dtype)
        pos = torch.as_tensor(np.asarray(x_pos, np.float64)).to(self.device, self.torch_dtype)
        return _f64(self._rescale(cfg, pos, guidance_rescale=guidance_rescale))

    def generic_samplers(self) -> dict:
        """Every diffusers scheduler class whose constructor takes ``rescale_betas_zero_snr``
        (inversion schedulers excepted). Scanned once per implementation (the scan inspects every
        scheduler class); each call returns a new dict of the same factories."""
        if self._generic is None:
            self._generic = self._scan_generic()
        return dict(self._generic)

    def _scan_generic(self) -> dict:
        from diffusers import schedulers

        found = {}
        for name in sorted(dir(schedulers)):
            if not name.endswith("Scheduler"):
                continue
            try:
                cls = getattr(schedulers, name)
            except (AttributeError, ImportError):  # optional back-ends (flax, scipy, ...) missing
                continue
            if not inspect.isclass(cls):
                continue
            try:
                params = inspect.signature(cls.__init__).parameters
            except (TypeError, ValueError):
                continue
            # inversion schedulers run from data to noise: "start at T" and "finite at T" do not apply
            if "rescale_betas_zero_snr" in params and "Inverse" not in name:
                found[name] = self._generic_factory(cls)
        return found

    def _generic_factory(self, cls):
        def make(impl, cls, config, kw):
            try:
                return DiffusersSampler(impl, cls, config, kw)
            except Unsupported:
                raise
            except Exception as exc:  # noqa: BLE001 -- any constructor error: a configuration it rejects
                raise Unsupported(f"{cls.__name__} rejects {config}: {type(exc).__name__}: {exc}") from None

        def build(config: SamplerConfig):
            return self._sampler(cls, config, make)
        return build

    # --- training side (optional contract methods, properties/conformance/training.py) ---------

    def training_snr(self, config: SamplerConfig, t):
        """``diffusers.training_utils.compute_snr`` of the configuration's scheduler."""
        compute_snr = _compute_snr()

        smp = self.build(config)
        return _f64(compute_snr(smp.scheduler, torch.as_tensor(np.asarray(t, np.int64))))

    def min_snr_weights(self, config: SamplerConfig, t, gamma: float):
        """The Min-SNR-γ loss weights exactly as diffusers' training examples apply them (e.g.
        examples/text_to_image/train_text_to_image.py, ``--snr_gamma``)::

            snr = compute_snr(noise_scheduler, timesteps)
            mse_loss_weights = torch.stack([snr, args.snr_gamma * torch.ones_like(timesteps)], dim=1).min(dim=1)[0]
            if noise_scheduler.config.prediction_type == "epsilon":
                mse_loss_weights = mse_loss_weights / snr
            elif noise_scheduler.config.prediction_type == "v_prediction":
                mse_loss_weights = mse_loss_weights / (snr + 1)
        """
        compute_snr = _compute_snr()
        noise_scheduler = self.build(config).scheduler
        timesteps = torch.as_tensor(np.asarray(t, np.int64))
        snr = compute_snr(noise_scheduler, timesteps)
        mse_loss_weights = torch.stack([snr, gamma * torch.ones_like(timesteps)], dim=1).min(dim=1)[0]
        if noise_scheduler.config.prediction_type == "epsilon":
            mse_loss_weights = mse_loss_weights / snr
        elif noise_scheduler.config.prediction_type == "v_prediction":
            mse_loss_weights = mse_loss_weights / (snr + 1)
        return _f64(mse_loss_weights)

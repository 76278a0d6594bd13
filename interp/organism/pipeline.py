"""``OrganismPipeline``: the trained organism behind StableDiffusion3Pipeline's calling convention.

Design
------
The tracer treats a pipeline as SD3 when it finds what SD3's pipeline has, so this class copies SD3's
denoising loop line for line where it matters: ``retrieve_timesteps`` on the flow-matching scheduler;
per step ONE transformer call on the CFG batch ``[uncond, cond]`` with
``timestep = t.expand(batch)`` taken from ``scheduler.timesteps`` and keyword arguments
``hidden_states, timestep, encoder_hidden_states, pooled_projections, joint_attention_kwargs,
return_dict=False``; the guidance combination ``uncond + scale * (cond - uncond)``;
``scheduler.step``; ``callback_on_step_end`` after the step with the tensors named in
``callback_on_step_end_tensor_inputs`` (``latents`` may be replaced by the callback);
``do_classifier_free_guidance`` is ``guidance_scale > 1``.

Differences from SD3, all forced by the model: one text encoder (T5-like) and one tokenizer, padded
to 24 positions (``max_sequence_length``); pooled projections are the encoder's EOS hidden state; the
"latents" are pixels in [-1, 1] (no VAE), turned into images by diffusers' ``VaeImageProcessor``.
Prompts must use the organism's closed vocabulary (``ValueError`` otherwise). ``token_layout(prompt)``
describes the text key positions (BOS, content, EOS, padding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import retrieve_timesteps
from diffusers.utils.torch_utils import randn_tensor
from transformers import PreTrainedTokenizerFast, T5EncoderModel

from interp.organism.text import MAX_LENGTH, encode, tokenize

DEFAULT_GUIDANCE_SCALE = 4.0  # the best of 2, 3, 4, 6 on selection seeds (docs/organism.md)
DEFAULT_STEPS = 20


class OrganismPipeline(DiffusionPipeline):
    """Text-to-image pipeline of the organism (see module docstring).

    Attributes: ``transformer`` (``SD3Transformer2DModel``), ``scheduler``
    (``FlowMatchEulerDiscreteScheduler``), ``text_encoder`` (``T5EncoderModel``), ``tokenizer``.
    """

    model_cpu_offload_seq = "text_encoder->transformer"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "pooled_prompt_embeds"]

    def __init__(
        self,
        transformer: SD3Transformer2DModel,
        scheduler: FlowMatchEulerDiscreteScheduler,
        text_encoder: T5EncoderModel,
        tokenizer: PreTrainedTokenizerFast,
    ):
        super().__init__()
        self.register_modules(
            transformer=transformer, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer
        )
        self.image_processor = VaeImageProcessor(vae_scale_factor=1, do_normalize=True)
        self.tokenizer_max_length = MAX_LENGTH
        self.default_sample_size = transformer.config.sample_size if transformer is not None else 32

    # -- properties SD3's pipeline exposes -------------------------------------------------------
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1

    @property
    def joint_attention_kwargs(self) -> dict[str, Any] | None:
        return self._joint_attention_kwargs

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # -- text ------------------------------------------------------------------------------------
    def _embed(self, prompts: list[str], device: torch.device, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = tokenize(self.tokenizer, prompts, max_length).to(device)
        hidden, pooled = encode(self.text_encoder, ids, self.tokenizer.eos_token_id)
        dtype = self.transformer.dtype
        return hidden.to(dtype), pooled.to(dtype)

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        negative_prompt: str | list[str] | None = None,
        do_classifier_free_guidance: bool = True,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        device: torch.device | None = None,
        num_images_per_prompt: int = 1,
        max_sequence_length: int = MAX_LENGTH,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """(prompt_embeds, negative_prompt_embeds, pooled, negative_pooled), as SD3's ``encode_prompt``."""
        device = device or self._execution_device
        if prompt_embeds is None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            prompt_embeds, pooled_prompt_embeds = self._embed(prompts, device, max_sequence_length)
        elif pooled_prompt_embeds is None:
            raise ValueError("pooled_prompt_embeds must be given with prompt_embeds")
        batch = prompt_embeds.shape[0]
        prompt_embeds = prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0)
        pooled_prompt_embeds = pooled_prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0)
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negative_prompt = negative_prompt or ""
            negs = batch * [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
            if len(negs) != batch:
                raise ValueError(f"negative_prompt has {len(negs)} entries but prompt has {batch}")
            negative_prompt_embeds, negative_pooled_prompt_embeds = self._embed(negs, device, max_sequence_length)
        if do_classifier_free_guidance:
            if negative_pooled_prompt_embeds is None:
                raise ValueError("negative_pooled_prompt_embeds must be given with negative_prompt_embeds")
            negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(num_images_per_prompt, dim=0)
            negative_pooled_prompt_embeds = negative_pooled_prompt_embeds.repeat_interleave(
                num_images_per_prompt, dim=0
            )
        return prompt_embeds, negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds

    def token_layout(self, prompt: str, max_sequence_length: int = MAX_LENGTH) -> list[dict[str, Any]]:
        """One dict per text key position: ``position`` (0-based in the text sequence), ``key`` (index in
        the joint key sequence ``[image, text]`` at the default image size), ``token_id``, ``token``, and
        ``kind``: ``"bos"``, ``"content"``, ``"eos"`` or ``"padding"`` (padding positions follow EOS)."""
        ids = tokenize(self.tokenizer, [prompt], max_sequence_length)[0].tolist()
        toks = self.tokenizer.convert_ids_to_tokens(ids)
        n_image = (self.default_sample_size // self.transformer.config.patch_size) ** 2
        eos = ids.index(self.tokenizer.eos_token_id)
        out = []
        for i, (tid, tok) in enumerate(zip(ids, toks, strict=True)):
            kind = "bos" if i == 0 else "content" if i < eos else "eos" if i == eos else "padding"
            out.append({"position": i, "key": n_image + i, "token_id": int(tid), "token": tok, "kind": kind})
        return out

    # -- sampling --------------------------------------------------------------------------------
    def prepare_latents(
        self,
        batch_size: int,
        num_channels: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if latents is not None:
            return latents.to(device=device, dtype=dtype)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"{len(generator)} generators for a batch of {batch_size}")
        return randn_tensor((batch_size, num_channels, height, width), generator=generator, device=device, dtype=dtype)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = DEFAULT_STEPS,
        sigmas: list[float] | None = None,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        negative_pooled_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        joint_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[..., dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        max_sequence_length: int = MAX_LENGTH,
    ):
        """Generate images; arguments as StableDiffusion3Pipeline's (one text encoder, no VAE).

        Returns ``ImagePipelineOutput(images=...)`` (PIL list, float array (N, H, W, 3) in [0, 1] for
        ``"np"``, tensor (N, 3, H, W) in [0, 1] for ``"pt"``, raw pixels in [-1, 1] for ``"latent"``), or
        a 1-tuple when ``return_dict`` is False.
        """
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        bad = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if bad:
            raise ValueError(f"callback tensors must be among {self._callback_tensor_inputs}, got {bad}")
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ValueError(f"output_type must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}")
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("pass exactly one of prompt and prompt_embeds")
        height = height or self.default_sample_size
        width = width or self.default_sample_size
        p = self.transformer.config.patch_size
        if height % p or width % p:
            raise ValueError(f"height and width must be multiples of the patch size {p}, got {height}x{width}")

        self._guidance_scale = guidance_scale
        self._joint_attention_kwargs = joint_attention_kwargs
        self._interrupt = False

        if prompt is not None:
            batch_size = 1 if isinstance(prompt, str) else len(prompt)
        else:
            batch_size = prompt_embeds.shape[0]
        device = self._execution_device

        (
            prompt_embeds,
            negative_prompt_embeds,
            pooled_prompt_embeds,
            negative_pooled_prompt_embeds,
        ) = self.encode_prompt(
            prompt=prompt,
            negative_prompt=negative_prompt,
            do_classifier_free_guidance=self.do_classifier_free_guidance,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            pooled_prompt_embeds=pooled_prompt_embeds,
            negative_pooled_prompt_embeds=negative_pooled_prompt_embeds,
            device=device,
            num_images_per_prompt=num_images_per_prompt,
            max_sequence_length=max_sequence_length,
        )
        if self.do_classifier_free_guidance:
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds], dim=0)
            pooled_prompt_embeds = torch.cat([negative_pooled_prompt_embeds, pooled_prompt_embeds], dim=0)

        latents = self.prepare_latents(
            batch_size * num_images_per_prompt,
            self.transformer.config.in_channels,
            height,
            width,
            prompt_embeds.dtype,
            device,
            generator,
            latents,
        )
        timesteps, num_inference_steps = retrieve_timesteps(self.scheduler, num_inference_steps, device, sigmas=sigmas)
        self._num_timesteps = len(timesteps)

        with self.progress_bar(total=num_inference_steps) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                latent_model_input = torch.cat([latents] * 2) if self.do_classifier_free_guidance else latents
                timestep = t.expand(latent_model_input.shape[0])
                noise_pred = self.transformer(
                    hidden_states=latent_model_input,
                    timestep=timestep,
                    encoder_hidden_states=prompt_embeds,
                    pooled_projections=pooled_prompt_embeds,
                    joint_attention_kwargs=self.joint_attention_kwargs,
                    return_dict=False,
                )[0]
                if self.do_classifier_free_guidance:
                    noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                    noise_pred = noise_pred_uncond + self.guidance_scale * (noise_pred_text - noise_pred_uncond)
                latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]

                if callback_on_step_end is not None:
                    callback_kwargs = {}
                    for k in callback_on_step_end_tensor_inputs:
                        callback_kwargs[k] = locals()[k]
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                    prompt_embeds = callback_outputs.pop("prompt_embeds", prompt_embeds)
                    pooled_prompt_embeds = callback_outputs.pop("pooled_prompt_embeds", pooled_prompt_embeds)
                progress_bar.update()

        if output_type == "latent":
            image = latents
        else:
            image = self.image_processor.postprocess(latents.float(), output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)

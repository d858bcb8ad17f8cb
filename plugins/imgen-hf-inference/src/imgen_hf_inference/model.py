"""The Hugging Face Inference backend: `InferenceEndpointsImageGeneration`.

Requests go through `huggingface_hub.AsyncInferenceClient.text_to_image`: to Inference
Providers for a Hub model id, or straight to one server for a `base_url` (a dedicated Inference
Endpoint, or any server that speaks the same protocol). huggingface_hub is imported in `load()`
and in the methods that run after it, never at module import, so discovering the plugin stays
cheap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PrivateAttr, SecretStr, field_validator, model_validator

from imgen import AsyncImageGenerationModel, RuntimeParameter, env_field
from imgen.errors import (
    ConfigurationError,
    ImgenError,
    MissingCredentialsError,
    RequestRefusedError,
    UnexpectedResponseError,
    brief_repr,
    brief_text,
    did_you_mean,
    mask_secrets,
    translate_refusals,
)
from imgen.images import (
    EncodedImage,
    ImageEncodingFields,
    ImageFormat,
    images_output,
    keep_or_encode_async,
)
from imgen.retry import is_transient, retry_after_of

if TYPE_CHECKING:
    from huggingface_hub import AsyncInferenceClient
    from huggingface_hub.errors import HfHubHTTPError

__all__ = [
    "InferenceEndpointsImageGeneration",
    "InferenceRequestError",
    "is_hugging_face_url",
    "text_to_image_providers",
]

# The parameters text_to_image takes by name. The client merges extra_body over them, so an
# extra_body key of the same name would silently win (a fixed "seed" would undo seed + k).
_NAMED_PARAMETERS = frozenset(
    {
        "negative_prompt",
        "height",
        "width",
        "num_inference_steps",
        "guidance_scale",
        "scheduler",
        "seed",
    }
)


def _json_body(body: dict[str, Any]) -> dict[str, Any]:
    shadowed = sorted(_NAMED_PARAMETERS & body.keys())
    if shadowed:
        raise ValueError(
            f"extra_body may not set {', '.join(shadowed)}; pass them as generation kwargs"
        )
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as exc:  # it would fail only at request time
        raise ValueError(f"extra_body must be JSON data: {exc}") from None
    return body


# Sizes are only required to be positive: the multiple a model wants (8, 16, 64...) differs
# from model to model, and the server reports a bad one with a 400.
Pixels = Annotated[int, Field(ge=1)]
Steps = Annotated[int, Field(ge=1)]
Guidance = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0)]
ExtraBody = Annotated[dict[str, Any], AfterValidator(_json_body)]

# Hosts run and authenticated by Hugging Face: the Hub and its inference router, and dedicated
# Inference Endpoints. Spaces (*.hf.space) are left out on purpose: any Hub user can publish
# one, and the Space's own code reads the request headers.
_HUGGING_FACE_DOMAINS = ("huggingface.co", "hf.co", "endpoints.huggingface.cloud")


def is_hugging_face_url(url: str) -> bool:
    """Whether `url` is an https URL on huggingface.co, hf.co (or a subdomain of either) or
    *.endpoints.huggingface.cloud.

    Only such URLs may receive a token the user did not hand to the model explicitly.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    return parts.scheme == "https" and any(
        host == domain or host.endswith("." + domain) for domain in _HUGGING_FACE_DOMAINS
    )


def _disable_hub_telemetry() -> None:
    """Keep huggingface_hub from making requests nobody asked for; call before importing it.

    Unless HF_HUB_DISABLE_TELEMETRY is set when huggingface_hub is first imported, its first
    request blocks on a GET to {HF_ENDPOINT}/api/agent-harnesses to build its user agent, even
    when every generation goes to a local server. A value the user set is kept.
    """
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def text_to_image_providers() -> list[str]:
    """The providers the installed huggingface_hub routes text-to-image to, after "auto"."""
    _disable_hub_telemetry()
    from huggingface_hub.inference._providers import PROVIDERS

    return ["auto", *sorted(name for name, tasks in PROVIDERS.items() if "text-to-image" in tasks)]


class InferenceRequestError(RequestRefusedError):
    """The inference server or provider answered a request with an error status.

    The token is masked wherever the server echoed it, and no exception is chained (see
    `imgen.errors.RequestRefusedError`).

    Attributes:
        status_code: The HTTP status, e.g. 400.
        retry_after: Seconds the server asked to wait before a retry, when it said so.
    """


class InferenceEndpointsImageGeneration(ImageEncodingFields, AsyncImageGenerationModel):
    """Images from Hugging Face Inference: Inference Providers, Inference Endpoints, or any
    server that speaks the same text-to-image protocol.

    Exactly one of `model` (a Hub model id, served through Inference Providers) and `base_url`
    (one server, called directly) is set. huggingface_hub never retries, so the imgen engine is
    the one retry policy, bounded by `max_retries`, honouring `Retry-After`.
    """

    backend_name: ClassVar[str] = "hf-inference"
    # Each request makes one image: the engine fans out num_generations single-image calls,
    # retries each on its own, and (the core's default fan_out_kwargs) gives image k `seed + k`.
    _num_generations_param_supported: ClassVar[bool] = False

    model: str | None = Field(
        None,
        description="A Hub model id served through Inference Providers, e.g. "
        "black-forest-labs/FLUX.1-schnell. Exactly one of model and base_url is set.",
    )
    base_url: RuntimeParameter[str] = Field(
        None,
        description="The URL of one server to call directly: a dedicated Inference Endpoint or "
        "any compatible server. Exactly one of model and base_url is set.",
    )
    provider: str = Field(
        "auto",
        description='The Inference Provider for a Hub model id, e.g. "fal-ai" or '
        '"hf-inference"; "auto" follows your preference order at '
        "https://hf.co/settings/inference-providers. Not used with base_url.",
    )
    api_key: RuntimeParameter[SecretStr] = env_field(
        "HF_TOKEN",
        description="A Hugging Face token (or a provider's own key). Taken from HF_TOKEN when "
        "not set, and then only sent to Hugging Face hosts, never to another base_url.",
        secret=True,
    )
    image_format: ImageFormat | None = Field(
        None,
        description="None: every image exactly as the server sent it, in its own format. "
        '"png", "jpeg" or "webp": images the server sent in another format are converted.',
    )

    _client: AsyncInferenceClient | None = PrivateAttr(None)

    @field_validator("model")
    @classmethod
    def _hub_model_id(cls, model: str | None) -> str | None:
        # The client sends a URL given as model to that URL, token included: base_url's job.
        if model is not None and "://" in model:
            raise ValueError(
                "takes a Hub model id such as black-forest-labs/FLUX.1-schnell; "
                "pass a server URL as base_url=... instead"
            )
        if model is not None and not model.strip():
            raise ValueError("must be a Hub model id, not empty")
        return model

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        # Anything else, "HTTPS://..." included, the client would take for a Hub model id.
        if url is not None and not (
            url.startswith(("http://", "https://")) and urlsplit(url).hostname
        ):
            raise ValueError(
                "must be an http:// or https:// URL, e.g. https://xyz.endpoints.huggingface.cloud"
            )
        return url

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, provider: str) -> str:
        if provider == "auto":
            return provider
        known = text_to_image_providers()
        if provider not in known:
            raise ValueError(
                f"{brief_repr(provider)} is not a text-to-image provider of the installed "
                f"huggingface_hub.{did_you_mean(provider, known)} Known: {', '.join(known)}"
            )
        return provider

    @model_validator(mode="before")
    @classmethod
    def _one_target(cls, data: Any) -> Any:
        # Before, not after: on assignment pydantic would already have stored the bad value.
        # ConfigurationError, not ValueError: pydantic would wrap a ValueError with the raw
        # input, and imgen's message for it would then show api_key in clear.
        if not isinstance(data, dict):
            return data
        model, base_url = data.get("model"), data.get("base_url")
        if model is None and base_url is None:
            raise ConfigurationError(
                f"{cls.__name__} needs model (a Hub model id, e.g. "
                "black-forest-labs/FLUX.1-schnell) or base_url (a server URL)."
            )
        if model is not None and base_url is not None:
            raise ConfigurationError(f"{cls.__name__} takes model or base_url, not both.")
        if base_url is not None and data.get("provider", "auto") != "auto":
            raise ConfigurationError(
                f"{cls.__name__}.provider applies to Hub model ids only; "
                "a base_url is called directly."
            )
        return data

    @property
    def model_name(self) -> str:
        """The Hub model id, or the base_url."""
        return self.model or self.base_url or ""

    def load(self) -> None:
        """Create the inference client.

        Raises:
            ConfigurationError: HF_HUB_OFFLINE is set, so huggingface_hub would refuse every
                request, even to a local base_url.
            MissingCredentialsError: A Hub model id but no token: no api_key, no HF_TOKEN and
                no `hf auth login`.
        """
        _disable_hub_telemetry()
        import huggingface_hub
        from huggingface_hub import constants

        if constants.is_offline_mode():
            raise ConfigurationError(
                "HF_HUB_OFFLINE is set, so huggingface_hub refuses every request, even to a "
                "local base_url. Unset it to use the hf-inference backend."
            )
        if self.base_url is None and not self._secret() and huggingface_hub.get_token() is None:
            raise MissingCredentialsError(self.backend_name, "api_key", "HF_TOKEN")
        credentials: dict[str, Any] = (
            # Without the override the client would send HF_TOKEN or the saved login anyway.
            {"headers": {"authorization": None}}
            if self._withholds_token()
            # None lets the client use the saved login: it only goes to Hugging Face here.
            else {"token": self._secret() or None}
        )
        self._close_client()
        self._client = huggingface_hub.AsyncInferenceClient(
            model=self.model,
            base_url=self.base_url,
            provider=self.provider,  # type: ignore[arg-type]  # checked by _known_provider
            timeout=self.timeout,
            **credentials,
        )
        super().load()

    def unload(self) -> None:
        """Close the client on the event loop it ran on, then stop that loop."""
        self._close_client()
        super().unload()

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self.run_on_own_loop(client.close())  # type: ignore[no-untyped-call]

    def _secret(self) -> str:
        return self.api_key.get_secret_value() if self.api_key is not None else ""

    def _withholds_token(self) -> bool:
        """Whether requests must carry no token at all.

        A key set on the model goes wherever the model sends requests. A key from the
        environment (HF_TOKEN, or huggingface_hub's saved login) only goes to Hugging Face:
        a Hub model id, or a base_url on a Hugging Face host. Fields set by `load_model` from a
        dump never include api_key, so a reloaded model keeps its key's provenance.
        """
        if self.base_url is None or is_hugging_face_url(self.base_url):
            return False
        return not ("api_key" in self.model_fields_set and self._secret())

    def is_retryable(self, exc: BaseException) -> bool:
        """Retry 408, 409, 429 and 5xx answers, timeouts and dropped connections.

        huggingface_hub raises connection failures as bare httpx2 errors, which the default
        policy does not know; other 4xx answers and bad responses fail at once.
        """
        import httpx2

        dropped = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
        return isinstance(exc, dropped) or is_transient(exc)

    async def agenerate(
        self,
        input: str,
        num_generations: int = 1,
        negative_prompt: str | None = None,
        height: Pixels | None = None,
        width: Pixels | None = None,
        num_inference_steps: Steps | None = None,
        guidance_scale: Guidance | None = None,
        seed: Seed | None = None,
        scheduler: str | None = None,
        extra_body: ExtraBody | None = None,
    ) -> list[dict[str, Any]]:
        """Generate `num_generations` images for one prompt, one request each.

        A parameter left as None is not sent, so the server applies its own default. Which
        parameters a model honours depends on the server or provider.

        Args:
            input: The prompt.
            num_generations: Images to generate, one request each. The engine sends them
                concurrently, as single-image calls that are retried one by one.
            negative_prompt: What the images should not show.
            height: Image height in pixels (>= 1); most models want a multiple of 8 or 16.
            width: Image width in pixels (>= 1); most models want a multiple of 8 or 16.
            num_inference_steps: Denoising steps (>= 1); more is slower and usually finer.
            guidance_scale: How closely to follow the prompt (>= 0); too high oversaturates.
            seed: The seed of the first image (>= 0); image k uses seed + k, so a rerun with
                the same seed gives the same images.
            scheduler: The name of a scheduler to use instead of the model's default, where
                the server allows it.
            extra_body: Provider-specific parameters, merged into the request's "parameters";
                the parameters above may not be repeated here.

        Returns:
            A list holding one dict: "images" (base64 strings), "format" (the images'
            format, as sent or as converted to image_format) and, when `seed` is given,
            "seeds" (the seed of each image).

        Raises:
            InferenceRequestError: The server answered with an error status.
            UnexpectedResponseError: The server answered with something that is not an image.
            huggingface_hub.errors.InferenceTimeoutError: A request outlived `timeout`.
        """
        options = {
            "negative_prompt": negative_prompt,
            "height": height,
            "width": width,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "scheduler": scheduler,
            "extra_body": extra_body,
        }
        seeds = [None if seed is None else seed + k for k in range(num_generations)]
        images = [await self._image(input, {**options, "seed": s}) for s in seeds]
        output = images_output(images)
        if seed is not None:
            output["seeds"] = seeds
        return [output]

    async def _image(self, prompt: str, options: dict[str, Any]) -> EncodedImage:
        """One request for one image: the bytes the server sent, or converted to image_format."""
        from huggingface_hub.errors import HfHubHTTPError
        from PIL import UnidentifiedImageError

        if self._client is None:
            raise ImgenError(f"{type(self).__name__} is not loaded: call load() first.")
        # The client reads its timeout per request: follow a timeout changed after load().
        self._client.timeout = self.timeout
        try:
            # The client's error keeps the request (token included): nothing chains back to it.
            with translate_refusals(HfHubHTTPError, self._request_error):
                image = await self._client.text_to_image(prompt, **options)
        except UnidentifiedImageError:
            image = None
        if image is None:
            # Raised outside the except block: Pillow's error, whose traceback runs through the
            # client's frames, is not chained.
            raise UnexpectedResponseError(
                f"{self.model_name} answered with data that is not an image: "
                "is it a text-to-image endpoint?"
            )
        # The client opens its image lazily over the reply's bytes: they pass through as sent.
        return await keep_or_encode_async(image, self.image_encoding(self.image_format))

    def _request_error(self, exc: HfHubHTTPError) -> InferenceRequestError:
        """Describe an error status by the server's own message, never echoing the key."""
        status = exc.response.status_code
        # The saved login is sent too when no token is set: mask it as well.
        secrets = [self._secret(), *_saved_tokens()]
        # Masked before it is cut short, so that no part of a token survives the cut.
        detail = brief_text(mask_secrets(exc.server_message or str(exc), secrets), 400)
        hint = ""
        if status in (401, 403):
            summary = "rejected the credentials"
            hint = (
                " HF_TOKEN is only sent to Hugging Face hosts: set api_key=... on the model to "
                "send a token to this server."
                if self._withholds_token()
                else " Check the api_key field or the HF_TOKEN environment variable."
            )
        elif status < 500:
            summary = "rejected the request"
        else:
            summary = "failed to handle the request"
        return InferenceRequestError(
            f"{self.model_name} {summary} ({status}): {detail}{hint}",
            status_code=status,
            retry_after=retry_after_of(exc),
            secrets=secrets,
        )


def _saved_tokens() -> list[str | None]:
    """The tokens huggingface_hub sends when the model sets none: its environment variables and
    the saved login (`hf auth login`). Read from the file as is: no network, no refresh."""
    from huggingface_hub import constants

    try:
        saved = Path(constants.HF_TOKEN_PATH).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        saved = None
    return [os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN"), saved]

"""The OpenAI Images backend: `OpenAIImageGeneration`, on the official `openai` SDK.

The SDK is imported in `load()` and in the methods that run after it, never at module import,
so discovering the plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field, PrivateAttr, SecretStr

from imgen import AsyncImageGenerationModel, RuntimeParameter, env_field
from imgen.errors import (
    ImgenError,
    MissingCredentialsError,
    RequestRefusedError,
    UnexpectedResponseError,
    brief_text,
    mask_secrets,
    translate_refusals,
)
from imgen.images import EncodedImage, images_output
from imgen.retry import is_transient, retry_after_of

if TYPE_CHECKING:
    import httpx2
    from openai import APIStatusError, AsyncOpenAI
    from openai._legacy_response import LegacyAPIResponse
    from openai.types import Image, ImagesResponse

__all__ = ["OpenAIImageGeneration", "OpenAIRequestError"]

# The values the Images API accepts (openai.types.image_generate_params), checked before any
# request. Sizes are open-ended: newer models take any "WIDTHxHEIGHT".
Size = Annotated[str, Field(pattern=r"^(auto|[1-9][0-9]*x[1-9][0-9]*)$")]
Quality = Literal["auto", "low", "medium", "high", "xhigh", "max", "standard", "hd"]
Style = Literal["vivid", "natural"]
Background = Literal["auto", "transparent", "opaque"]
OutputFormat = Literal["png", "jpeg", "webp", "gif", "svg"]
Compression = Annotated[int, Field(ge=0, le=100)]
Moderation = Literal["auto", "low"]
ResponseFormat = Literal["b64_json", "url"]

SINGLE_IMAGE_MODELS = frozenset({"dall-e-3"})
"""Models that accept only n=1: the engine sends one request per image."""

# An exhausted quota is answered with 429 like a rate limit, but waiting does not refill it.
_NEVER_RETRIED_CODES = frozenset({"insufficient_quota"})

_T = TypeVar("_T")


class OpenAIRequestError(RequestRefusedError):
    """The OpenAI API answered a request with an error status.

    The API key is masked wherever the server echoed it, and no exception is chained (see
    `imgen.errors.RequestRefusedError`).

    Attributes:
        status_code: The HTTP status, e.g. 400.
        code: The API's error code, e.g. "content_policy_violation", when it sent one.
        retry_after: Seconds the API asked to wait before a retry, when it said so.
        request_id: The API's id of the request (`x-request-id`), for OpenAI support.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        super().__init__(message, status_code=status_code, retry_after=retry_after, secrets=secrets)
        self.code = code
        self.request_id = request_id

    @classmethod
    def from_status_error(cls, exc: APIStatusError, secret: str) -> OpenAIRequestError:
        """Describe an SDK status error by the API's own message and code.

        Args:
            exc: The SDK's error. Neither it nor its text is kept: its request holds the API
                key, and its message may quote a server that echoed the key.
            secret: The API key, masked wherever the server echoed it.
        """
        status = exc.status_code
        body_message = exc.body.get("message") if isinstance(exc.body, dict) else None
        # Masked before it is cut short, so that no part of the key survives the cut.
        detail = brief_text(mask_secrets(str(body_message or exc.message).strip(), [secret]), 400)
        label = f"{status} {exc.code}" if exc.code else str(status)
        if status == 401:
            summary = "OpenAI rejected the API key"
            if not detail.endswith((".", "!", "?")):
                detail += "."
            detail += " Check the api_key field or the OPENAI_API_KEY environment variable."
        else:
            summary = "OpenAI rejected the request" if status < 500 else "OpenAI failed"
        return cls(
            f"{summary} ({label}): {detail}",
            status_code=status,
            code=exc.code,
            retry_after=retry_after_of(exc),
            request_id=exc.request_id,
            secrets=[secret],
        )


@dataclass(frozen=True)
class _Clients:
    """What `load()` creates: the API client and the client that downloads image URLs."""

    api: AsyncOpenAI
    downloads: httpx2.AsyncClient

    async def close(self) -> None:
        await self.api.close()
        await self.downloads.aclose()


class OpenAIImageGeneration(AsyncImageGenerationModel):
    """Images from the OpenAI Images API (gpt-image-1, dall-e-3, dall-e-2, ...).

    Requests go through `openai.AsyncOpenAI` with the SDK's own retries off: the imgen engine
    is the one retry policy, bounded by `max_retries`, honouring `Retry-After`.
    """

    backend_name: ClassVar[str] = "openai"

    model: str = Field(
        "gpt-image-1", description="The OpenAI image model id, e.g. gpt-image-1 or dall-e-3."
    )
    api_key: RuntimeParameter[SecretStr] = env_field(
        "OPENAI_API_KEY", description="The OpenAI API key.", secret=True
    )
    base_url: RuntimeParameter[str] = env_field(
        "OPENAI_BASE_URL",
        description="The API root, e.g. http://localhost:8080/v1; None means OpenAI's own.",
    )
    organization: RuntimeParameter[str] = Field(
        None,
        description="The OpenAI organization id sent with each request; None lets the SDK "
        "read OPENAI_ORG_ID.",
    )

    _clients: _Clients | None = PrivateAttr(None)

    @property
    def model_name(self) -> str:
        """The OpenAI model id."""
        return self.model

    def load(self) -> None:
        """Create the API client and the client that downloads images sent as URLs.

        Raises:
            MissingCredentialsError: No API key, neither set nor in OPENAI_API_KEY.
        """
        if self.api_key is None or not self.api_key.get_secret_value():
            raise MissingCredentialsError(self.backend_name, "api_key", "OPENAI_API_KEY")
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        self._close_clients()
        api = AsyncOpenAI(
            api_key=self.api_key.get_secret_value(),
            base_url=self.base_url,
            organization=self.organization,
            max_retries=0,  # the engine retries; SDK retries would multiply the attempts
        )
        # One pooled client for every image the API sends as a URL.
        self._clients = _Clients(api, DefaultAsyncHttpxClient())
        super().load()

    def unload(self) -> None:
        """Close the clients on the event loop they ran on, then stop that loop."""
        self._close_clients()
        super().unload()

    def _close_clients(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            self.run_on_own_loop(clients.close())

    def _loaded_clients(self) -> _Clients:
        if self._clients is None:
            raise ImgenError(f"{type(self).__name__} is not loaded: call load() first.")
        return self._clients

    @property
    def supports_num_generations(self) -> bool:
        """False for dall-e-3, which takes only n=1: the engine then sends one request per
        image, each with its own slot, timeout and retries, and merges the results."""
        return self.model not in SINGLE_IMAGE_MODELS

    def is_retryable(self, exc: BaseException) -> bool:
        """Retry 408, 409, 429 and 5xx answers, dropped connections and timeouts.

        An exhausted quota (429 insufficient_quota) is not retried, nor is any other 4xx.
        """
        import httpx2
        import openai

        if isinstance(exc, OpenAIRequestError) and exc.code in _NEVER_RETRIED_CODES:
            return False
        # APITimeoutError is an APIConnectionError; download failures are httpx2 errors.
        transport_errors = (openai.APIConnectionError, httpx2.TransportError)
        return isinstance(exc, transport_errors) or is_transient(exc)

    async def agenerate(
        self,
        input: str,
        num_generations: int = 1,
        size: Size | None = None,
        quality: Quality | None = None,
        style: Style | None = None,
        background: Background | None = None,
        output_format: OutputFormat | None = None,
        output_compression: Compression | None = None,
        moderation: Moderation | None = None,
        response_format: ResponseFormat | None = None,
        user: str | None = None,
    ) -> list[dict[str, Any]]:
        """Generate `num_generations` images for one prompt.

        A parameter left as None is not sent, so the API applies its own default.

        Args:
            input: The prompt.
            num_generations: Images to generate, sent as `n` (always 1 for dall-e-3: see
                `supports_num_generations`).
            size: "auto", "1024x1024", "1536x1024", "1024x1536" (GPT image models),
                "256x256", "512x512" (dall-e-2), "1792x1024", "1024x1792" (dall-e-3), or any
                "WIDTHxHEIGHT" a newer model accepts.
            quality: "auto", "low", "medium", "high", "xhigh" or "max" for GPT image models;
                "standard" or "hd" for dall-e-3.
            style: "vivid" or "natural" (dall-e-3 only).
            background: "auto", "transparent" or "opaque" (GPT image models; transparent
                needs png or webp output).
            output_format: "png", "jpeg", "webp", "gif" or "svg" (GPT image models).
            output_compression: Compression level 0..100 for jpeg and webp output (GPT image
                models).
            moderation: "auto" or "low", the content-moderation level (GPT image models).
            response_format: "b64_json" or "url" (dall-e models); URLs are downloaded, so the
                result holds base64 images either way.
            user: A stable id of your end user, for OpenAI's abuse monitoring.

        Returns:
            A list holding one dict: "images" (base64 strings, exactly as the API sent them,
            or the downloaded bytes of a url), "format" (read from the bytes, e.g. "png";
            absent when unknown) and "revised_prompts" (aligned with the images; None where
            the API returned none).

        Raises:
            OpenAIRequestError: The API answered with an error status.
        """
        options = {
            "size": size,
            "quality": quality,
            "style": style,
            "background": background,
            "output_format": output_format,
            "output_compression": output_compression,
            "moderation": moderation,
            "response_format": response_format,
            "user": user,
        }
        sent = {name: value for name, value in options.items() if value is not None}
        response = await self._request(input, num_generations, sent)
        items = response.data or []
        # The bytes tell the format; dall-e responses do not name it.
        images = await self._images_of(items, response.output_format)
        return [{**images_output(images), "revised_prompts": [i.revised_prompt for i in items]}]

    def _secret(self) -> str:
        return self.api_key.get_secret_value() if self.api_key else ""

    async def _request(self, prompt: str, n: int, options: dict[str, Any]) -> ImagesResponse:
        import openai

        images = self._loaded_clients().api.images.with_raw_response
        # The SDK's error keeps the request (API key included): nothing chains back to it.
        with translate_refusals(
            openai.APIStatusError,
            lambda exc: OpenAIRequestError.from_status_error(exc, self._secret()),
        ):
            # With **options, mypy cannot pick among the SDK's (stream=...) overloads.
            raw: LegacyAPIResponse[ImagesResponse] = await images.generate(
                model=self.model, prompt=prompt, n=n, timeout=self.timeout, **options
            )
        return self._images_response(raw)

    def _images_response(self, raw: LegacyAPIResponse[ImagesResponse]) -> ImagesResponse:
        """The parsed reply, or an error saying what came instead of an Images API response.

        Raises:
            UnexpectedResponseError: The body is not JSON (an HTML page from a proxy, a cut-off
                reply) or not shaped like an Images API response.
        """
        from openai.types import Image, ImagesResponse

        try:
            response: Any = raw.parse()
        except ValueError:  # the body claimed JSON but does not parse (cut off, say)
            response = None
        data = getattr(response, "data", None) if isinstance(response, ImagesResponse) else None
        if isinstance(data, list) and all(_is_image(item, Image) for item in data):
            return response  # type: ignore[no-any-return]
        http = raw.http_response
        content_type = http.headers.get("content-type") or "no content type"
        body = " ".join(http.text[:1000].split())
        raise UnexpectedResponseError(
            f"OpenAI endpoint {_endpoint(http.url)} answered {http.status_code} "
            f"({content_type}) with a body that is not an Images API response: "
            f"{brief_text(body, 120)!r}. Check base_url.",
            secrets=[self._secret()],
        )

    async def _images_of(self, items: list[Image], declared: str | None) -> list[EncodedImage]:
        """The images as the API sent them; those sent as URLs are downloaded concurrently.

        Args:
            items: The response's images.
            declared: The response's output_format, for bytes of no known signature (svg).
        """
        if all(item.b64_json for item in items):
            # The usual case, and the cheap one: no tasks to schedule.
            return [EncodedImage.received(item.b64_json or "", declared) for item in items]
        return await _all(self._image_of(item, declared) for item in items)

    async def _image_of(self, item: Image, declared: str | None) -> EncodedImage:
        if item.b64_json:
            return EncodedImage.received(item.b64_json, declared)
        if item.url:
            import httpx2

            # The URL's query may be a signature: the error names the URL without it, and
            # chains nothing that holds it.
            with translate_refusals(httpx2.HTTPStatusError, _download_refused):
                response = await self._loaded_clients().downloads.get(
                    item.url, timeout=self.timeout
                )
                response.raise_for_status()
            return EncodedImage.received(response.content, declared)
        raise UnexpectedResponseError("OpenAI returned an image with neither b64_json nor a url.")


def _is_image(item: Any, image_class: type[Image]) -> bool:
    """Whether `item` is an Images API image: the SDK builds replies without checking them."""
    return isinstance(item, image_class) and all(
        isinstance(value, str | None) for value in (item.b64_json, item.url, item.revised_prompt)
    )


def _download_refused(exc: httpx2.HTTPStatusError) -> RequestRefusedError:
    status = exc.response.status_code
    return RequestRefusedError(
        f"Downloading an image OpenAI sent as a URL failed: {_endpoint(exc.request.url)} "
        f"answered {status} {exc.response.reason_phrase}.",
        status_code=status,
        retry_after=retry_after_of(exc),
    )


def _endpoint(url: httpx2.URL) -> str:
    """A URL as shown in messages: without user info or query, which may hold credentials."""
    return f"{url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{url.path}"


async def _all(calls: Iterable[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run the calls concurrently; on the first failure cancel the rest and raise it as is."""
    import asyncio  # here, not at the top: discovery imports this module, asyncio costs ~20 ms

    first: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failures:
        # The engine classifies one failure for retries; a group would hide its kind.
        first = failures.exceptions[0]
    if first is not None:
        # Raised outside the handler, so the group is not its __context__ either.
        raise first
    return [task.result() for task in tasks]

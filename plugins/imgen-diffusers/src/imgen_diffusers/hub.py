"""Checking the Hugging Face Hub is within reach before a pipeline download starts.

Offline, `from_pretrained` spends about 30 seconds retrying before it fails with "does not
appear to have a file named model_index.json". One short request to the configured endpoint
(HF_ENDPOINT) tells in a few seconds at most: when nothing answers, a pipeline already in the
local cache loads from it at once, and any other fails with the fixes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgen.errors import ConfigurationError

__all__ = ["PROBE_TIMEOUT", "hub_load_kwargs", "hub_unreachable_reason"]

PROBE_TIMEOUT = 3.0
"""Seconds the probe waits for the endpoint to connect, and then to answer."""

_INDEX_FILE = "model_index.json"


def hub_unreachable_reason(endpoint: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why `endpoint` cannot be reached, or None when it answers.

    Any HTTP answer, an error status included, proves the endpoint reachable. The request goes
    through huggingface_hub's own HTTP client, so proxies, certificates and a client factory
    set with `huggingface_hub.set_client_factory` apply to it as to the download.

    Args:
        endpoint: The endpoint's base URL, e.g. "https://huggingface.co".
        timeout: Seconds to wait for the connection, and then for the answer.
    """
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=timeout)
    except Exception as exc:  # whichever HTTP stack this huggingface_hub version is built on
        if "Timeout" in type(exc).__name__:
            return f"no answer within {timeout:g} s"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def hub_load_kwargs(
    repo_id: str, revision: str | None, pipeline_kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Extra `from_pretrained` arguments for a Hub id, after checking the Hub can be reached.

    Args:
        repo_id: The pipeline's Hub id.
        revision: The revision to load; None for the default branch.
        pipeline_kwargs: The arguments `from_pretrained` gets already (`cache_dir`,
            `local_files_only`...).

    Returns:
        `{"local_files_only": True}` when the Hub is out of reach and the pipeline is in the
        local cache; `{}` otherwise.

    Raises:
        ConfigurationError: The pipeline can be found neither on the Hub nor in the cache;
            the message gives the fixes.
    """
    if pipeline_kwargs.get("local_files_only"):
        return {}
    from huggingface_hub import constants

    cached = _in_cache(repo_id, revision, pipeline_kwargs.get("cache_dir"))
    if constants.HF_HUB_OFFLINE:
        if cached:
            return {}
        raise ConfigurationError(
            f"The diffusers pipeline {repo_id!r} is not in the local Hugging Face cache, and "
            "HF_HUB_OFFLINE=1 forbids downloading it. Unset HF_HUB_OFFLINE on a machine that "
            "can reach the Hub, or point `model` at a local pipeline folder."
        )
    reason = hub_unreachable_reason(constants.ENDPOINT)
    if reason is None:
        return {}
    if cached:
        return {"local_files_only": True}
    raise ConfigurationError(
        f"Cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({reason}) to download the "
        f"diffusers pipeline {repo_id!r}, and it is not in the local cache. Fixes: point "
        "`model` at a local pipeline folder (one written by save_pretrained); run where the "
        "Hub is reachable once, then set HF_HUB_OFFLINE=1 to load from the cache; or set "
        "HF_ENDPOINT to a mirror you can reach."
    )


def _in_cache(repo_id: str, revision: str | None, cache_dir: Any) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, _INDEX_FILE, cache_dir=cache_dir, revision=revision)
    return isinstance(found, str)

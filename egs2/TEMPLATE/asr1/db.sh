# Where corpora live on this machine; local/data.sh reads these. Override in the environment.
# The default corpus (synth_sa) is synthesised offline and needs none.
LIBRISPEECH=${LIBRISPEECH:-downloads/LibriSpeech}
TEDLIUM3=${TEDLIUM3:-downloads/TEDLIUM_release-3}

# Corpus locations for this recipe (sourced by local/data.sh). A value set in the environment wins.
# LIBRISPEECH: directory that holds (or will receive) the archives and LibriSpeech/<part>/. Point
# it at an existing extracted copy (the directory above LibriSpeech/) to skip the download.
LIBRISPEECH=${LIBRISPEECH:-downloads}

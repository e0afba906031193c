# Corpus locations for this recipe (sourced by local/data.sh). A value set in the environment wins.
# TEDLIUM3: directory that holds (or will receive) TEDLIUM_release-3.tgz and TEDLIUM_release-3/.
# Point it at the directory above an existing extracted TEDLIUM_release-3/ to skip the download.
TEDLIUM3=${TEDLIUM3:-downloads}

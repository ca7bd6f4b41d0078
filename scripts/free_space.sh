# Sourced by setup.sh and sanitize.sh. Without this check a full disk shows up minutes later as
# pip's or the linker's "No space left on device", halfway through writing the venv or a build.

# require_free_mb FOLDER MB WHAT: stops the calling script with one line that names the folder and
# both figures when the file system holding FOLDER has less than MB megabytes free.
require_free_mb() {
  local folder=$1 need=$2 what=$3 avail
  avail=$(df -Pm "$folder" | awk 'NR == 2 { print $4 }')
  if ((avail < need)); then
    echo "error: $(cd "$folder" && pwd): $what needs about $need MB free on its file system, which has $avail MB" >&2
    exit 1
  fi
}

# require_build_space BUILD_DIR WHAT: require_free_mb before a first build in BUILD_DIR, the one
# that writes LibTorch's precompiled headers (1.2 GB; CMakeLists.txt, VIMVQ_PCH).
# VIMVQ_BUILD_SPACE_MB (default 1500) sets the figure.
require_build_space() {
  compgen -G "$1/CMakeFiles/*/cmake_pch.hxx.gch" > /dev/null ||
    require_free_mb . "${VIMVQ_BUILD_SPACE_MB:-1500}" "$2"
}

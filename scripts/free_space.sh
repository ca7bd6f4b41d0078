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

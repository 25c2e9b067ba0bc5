#!/usr/bin/env bash
# The vectorops quick start: build a real git + DVC repository holding two versions of an embedding
# dataset, then deploy it to an embedded LanceDB with vectorops, Terraform-style.
#
#   usage: examples/quickstart/run.sh [--force] [--build-only] [TARGET]
#
#   TARGET        folder to create (default: ./vectorops-quickstart); must be empty or absent
#   --force       delete TARGET first if it is not empty (e.g. to run the quick start again)
#   --build-only  build the repository and stop before the first vectorops command
#
# Needs git, and dvc + vectorops on PATH (`pip install vectorops` brings both). No network, no
# server and no embedding model: the vectors are committed in examples/quickstart/data/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DVC_NO_ANALYTICS=1

usage() { sed -n '5,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ %s\n' "$*"; "$@"; }

force=0
build_only=0
target=""
while (($#)); do
  case "$1" in
    --force) force=1 ;;
    --build-only) build_only=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option '$1'" ;;
    *) [[ -z "$target" ]] || die "one TARGET folder only (got '$target' and '$1')"; target="$1" ;;
  esac
  shift
done
target="${target:-./vectorops-quickstart}"

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not on PATH. $2"; }
need git "Install git first."
need dvc "Install vectorops (pip install vectorops), which brings DVC, and run this from that environment."
((build_only)) || need vectorops "Install vectorops (pip install vectorops) and run this from that environment."

# --- the target folder -------------------------------------------------------------------------
if [[ -e "$target" && ! -d "$target" ]]; then
  die "$target exists and is not a folder. Choose another TARGET."
fi
if [[ -d "$target" && -n "$(ls -A "$target")" ]]; then
  ((force)) || die "$target is not empty. Pass --force to delete it and start again, or choose another TARGET."
  resolved="$(cd "$target" && pwd -P)"
  # Never delete /, the home folder, or a folder holding these quick-start files.
  if [[ "$resolved" == / || "$resolved" == "$(cd ~ && pwd -P)" || "$HERE/" == "$resolved/"* ]]; then
    die "refusing to delete $resolved. Choose another TARGET."
  fi
  rm -rf -- "$resolved"
fi
mkdir -p "$target"
cd "$target"
repo="$(pwd -P)"

# --- a git + DVC repository with two tagged dataset versions -----------------------------------
step "Creating a git + DVC repository in $repo"
git init -q -b main
# Commit as the user if git knows who that is; otherwise set an identity in this repo only.
if ! git var GIT_AUTHOR_IDENT >/dev/null 2>&1 || ! git var GIT_COMMITTER_IDENT >/dev/null 2>&1; then
  git config user.name "vectorops quickstart"
  git config user.email "quickstart@vectorops.invalid"
  echo "(no git identity configured: using 'vectorops quickstart' in this repository only)"
fi
dvc init -q
dvc config core.analytics false
# A DVC remote in a local folder stands in for S3/GCS: vectorops reads each version from it.
dvc remote add -q -d local .dvc-remote
printf '%s\n' '.dvc-remote/' '.vectorops/' >.gitignore
git add .gitignore .dvcignore .dvc
git commit -q -m "Initialise DVC with a local remote"

mkdir -p data
add_version() { # $1 = version tag, $2 = Parquet file, $3 = commit message
  cp "$2" data/docs.parquet
  dvc add -q data/docs.parquet
  dvc push -q
  git add data/docs.parquet.dvc data/.gitignore
  git commit -q -m "$3"
  git tag -a "$1" -m "$3"
  printf '  %-8s %s  (%s)\n' "$1" "$(git rev-parse --short "$1^{commit}")" "$3"
}
step "Committing two versions of the dataset (DVC-tracked, pushed to .dvc-remote/)"
add_version docs-v1 "$HERE/data/docs-v1.parquet" "docs v1: 1611 stdlib docstrings, all-MiniLM-L6-v2"
add_version docs-v2 "$HERE/data/docs-v2.parquet" "docs v2: +statistics +difflib, -telnetlib, fuller shutil/tempfile text, os.path module label"

# The manifest, with its editor-schema line pointing at this checkout's schema when there is one.
schema="$(cd "$HERE/../.." && pwd -P)/schemas/vectorops.schema.json"
if [[ -f "$schema" ]]; then
  sed "s|\$schema=[^ ]*|\$schema=$schema|" "$HERE/vectorops.yaml" >vectorops.yaml
else
  grep -v 'yaml-language-server' "$HERE/vectorops.yaml" >vectorops.yaml
fi
cp "$HERE/canaries.yaml" canaries.yaml
git add vectorops.yaml canaries.yaml
git commit -q -m "Deploy docs-v1 to staging and prod"
show git log --oneline --decorate

if ((build_only)); then
  printf '\nRepository ready in %s (--build-only: stopping before vectorops).\n' "$repo"
  exit 0
fi

# --- the walk-through --------------------------------------------------------------------------
step "1. Validate the manifest (schema, datasets, revs, dimensions; touches no destination)"
show vectorops validate

step "2. Plan: both environments are empty, so every record is an add"
show vectorops plan

step "3. Apply docs-v1 to staging (canary queries run after the apply)"
show vectorops apply staging --auto-approve

step "4. Apply docs-v1 to prod (prod requires staging to have validated this version)"
show vectorops apply prod --auto-approve

step "5. Re-pin staging to docs-v2 in vectorops.yaml and commit, as a pull request would"
sed '/^  staging:/,/^  prod:/ s/version: docs-v1/version: docs-v2/' vectorops.yaml >vectorops.yaml.new
mv vectorops.yaml.new vectorops.yaml
git diff --quiet && die "could not find staging's 'version: docs-v1' in vectorops.yaml to re-pin"
show git --no-pager diff
git commit -q -am "staging: docs-v1 -> docs-v2"

step "6. Plan again: the exact diff between docs-v1 and docs-v2 (52 adds, 40 updates, 25 deletes)"
show vectorops plan

step "7. Apply docs-v2 to staging: only the changed records are written"
show vectorops apply staging --auto-approve

step "8. Status: staging runs docs-v2, prod still runs docs-v1"
show vectorops status

step "9. History of staging: who applied what, when, and what changed"
show vectorops history staging

cat <<EOF

Done. The repository is in $repo; try next:
  cd $repo
  vectorops promote staging prod   # pin prod to staging's version (then commit)
  vectorops plan prod              # the same 52 / 40 / 25 diff, now for prod
  vectorops rollback staging       # back to docs-v1
EOF

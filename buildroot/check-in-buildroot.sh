#!/usr/bin/env bash
# Checks this br2-external tree inside a real Buildroot checkout, as a Buildroot user meets it:
#   buildroot/check-in-buildroot.sh /path/to/buildroot [output dir]
# 1. `make BR2_EXTERNAL=... cairn_x86_64_defconfig`, then every `BR2_` line of the defconfig
#    (set, or "# ... is not set") must be in the resulting .config: kconfig drops a symbol
#    whose dependencies fail without a word;
# 2. `make show-info` must list cairn-init and cairnctl;
# 3. `utils/check-package` must be clean on every file of this tree.
# Needs what Buildroot's configure step needs (make, gcc) and, for check-package, python3-magic,
# flake8 and shellcheck. Downloads nothing.
set -euo pipefail

BR="${1:?usage: $0 /path/to/buildroot [output dir]}"
EXT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${2:-$(mktemp -d)}"
fail=0

for defconfig in "$EXT"/configs/*_defconfig; do
  name="$(basename "$defconfig")"
  rm -rf "$OUT/$name"
  make -s -C "$BR" BR2_EXTERNAL="$EXT" O="$OUT/$name" "$name" >/dev/null
  lines=0
  while IFS= read -r line; do
    lines=$((lines + 1))
    if ! grep -qxF "$line" "$OUT/$name/.config"; then
      echo "$name: kconfig dropped: $line" >&2
      fail=1
    fi
  done < <(grep -E '^(BR2_|# BR2_[A-Z0-9_]+ is not set$)' "$defconfig")
  echo "$name: $lines BR2_ lines checked against .config"
  info="$(make -s -C "$BR" BR2_EXTERNAL="$EXT" O="$OUT/$name" show-info)"
  for pkg in cairn-init cairnctl; do
    if printf '%s' "$info" | python3 -c "import json,sys; sys.exit(0 if '$pkg' in json.load(sys.stdin) else 1)"; then
      echo "$name: show-info lists $pkg"
    else
      echo "$name: show-info does not list $pkg" >&2
      fail=1
    fi
  done
done

mapfile -t files < <(find "$EXT" -type f ! -name README.md ! -name check-in-buildroot.sh | sort)
if ! (cd "$BR" && /usr/bin/python3 ./utils/check-package -b "${files[@]}"); then
  fail=1
fi
exit "$fail"

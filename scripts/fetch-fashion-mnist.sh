#!/usr/bin/env bash
# Puts the four Fashion-MNIST idx .gz files (MIT, Zalando SE) into a folder,
# by default data/fashion-mnist/raw/ under the repository root.
#
#   scripts/fetch-fashion-mnist.sh [TARGET_DIR]
#
# Needs no root: the files come from Debian's `dataset-fashion-mnist` package,
# taken from /usr/share/datasets/fashion-mnist/ when the package is installed,
# otherwise fetched with `apt-get download` and unpacked with `dpkg-deb -x`.
# Idempotent: when the four files are present and verified it does nothing.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/scripts/debian-package.sh"
target=${1:-$repo_root/data/fashion-mnist/raw}
[[ $target == /* ]] || target=$PWD/$target
package=dataset-fashion-mnist
package_dir=usr/share/datasets/fashion-mnist

# SHA-256 of each file's DECOMPRESSED content, recorded from
# dataset-fashion-mnist 0.0~git20200523.55506a9-1 (Debian bookworm). Debian
# recompressed the files, so the .gz bytes differ from Zalando's own downloads
# (whose published MD5s describe their .gz); the content is the same, so this
# check accepts the files from either source.
declare -A sha256=(
  [train-images-idx3-ubyte.gz]=c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888
  [train-labels-idx1-ubyte.gz]=bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9
  [t10k-images-idx3-ubyte.gz]=5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b
  [t10k-labels-idx1-ubyte.gz]=0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34
)
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
       t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

# True when DIR/NAME exists, is valid gzip and its content has the recorded hash.
verified() {
  local path=$1/$2 sum
  [[ -f $path ]] || return 1
  sum=$(gzip -dc -- "$path" 2>/dev/null | sha256sum) || return 1
  [[ ${sum%% *} == "${sha256[$2]}" ]]
}

all_verified() {
  local f
  for f in "${files[@]}"; do verified "$1" "$f" || return 1; done
}

give_up() {
  cat >&2 <<EOF
fetch-fashion-mnist: $1

Get the four Fashion-MNIST files by hand instead:
$(printf '  %s\n' "${files[@]}")
from https://github.com/zalandoresearch/fashion-mnist (folder data/fashion/,
or the download links in its README), or, on Debian/Ubuntu, from
/usr/share/datasets/fashion-mnist/ after 'sudo apt-get install $package'.
Put them, still gzipped and under exactly these names, into
  $target/
then run this script again to check them.
EOF
  exit 1
}

tmp=
# Removes the download dir and any copy a killed run left half-done.
trap 'rm -rf -- ${tmp:+"$tmp"} "$target"/.*.partial-$$' EXIT

if all_verified "$target"; then
  echo "fetch-fashion-mnist: $target already holds the verified files; nothing to do."
  exit 0
fi
for f in "${files[@]}"; do
  [[ -e $target/$f ]] && ! verified "$target" "$f" &&
    echo "fetch-fashion-mnist: $target/$f fails its check (corrupt or a different file); replacing it." >&2
done

source_dir=/$package_dir
if ! all_verified "$source_dir"; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-fashion-mnist.XXXXXX")
  echo "fetch-fashion-mnist: downloading $package with apt-get ..."
  unpack_debian_package "$package" "$tmp" || give_up "$DEBIAN_PACKAGE_ERROR"
  source_dir=$tmp/unpacked/$package_dir
  all_verified "$source_dir" ||
    give_up "the downloaded package does not hold the expected files (a different package version?)."
fi

mkdir -p -- "$target"
for f in "${files[@]}"; do
  install_file "$source_dir/$f" "$target" "$f"
done
echo "fetch-fashion-mnist: wrote ${#files[@]} verified files to $target"

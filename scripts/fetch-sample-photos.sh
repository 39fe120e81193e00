#!/usr/bin/env bash
# Puts a few real photos and the ImageNet-1k class names into a folder, by default
# data/sample-photos/ under the repository root (docs/data.md: source and licence). The test
# of the converted EfficientNet-Lite weights classifies them (test/python/test_efficientnet_lite.py).
#
#   scripts/fetch-sample-photos.sh [TARGET_DIR]
#
# Needs no root: the files come from Debian's `darknet` package (3.3 MB, the smallest package
# found that ships photos of ImageNet classes and the class list), taken from
# /usr/share/darknet/data/ when the package is installed, otherwise fetched with
# `apt-get download` and unpacked with `dpkg-deb -x`. Writes the 7 photos, the package's
# copyright file, and imagenet1k-classes.tsv: "wnid<TAB>name" for the 1000 ILSVRC-2012
# classes in the standard class-index order (sorted wnids: line 1 = index 0 = tench).
# Idempotent: when every file is present and verified it does nothing.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$repo_root/scripts/debian-package.sh"
target=${1:-$repo_root/data/sample-photos}
[[ $target == /* ]] || target=$PWD/$target
package=darknet
package_dir=usr/share/darknet/data
copyright_file=usr/share/doc/darknet/copyright

# SHA-256 of each file, recorded from darknet 0.0.0+git20180914.61c9d02e-2+b4 (Debian bookworm).
declare -A sha256=(
  [dog.jpg]=5a9522051c3cec2bbd2f6323fccba32e8fbf3ddcc2b3e2fd46b04c720bc6f866
  [eagle.jpg]=f95f57297fd51a6c5ddceb5ed6916fa759d1d65f402fee34c05b31a9608755c0
  [giraffe.jpg]=00dc48a9b2af8a1fe4c4b79319726591f1033c7e1150f21e7577a79f3b6659f1
  [horses.jpg]=c8f0a677a1356569e2ce71d2fa88c1030c0ae57ecf5e14170e02d9a86a20dcb4
  [kite.jpg]=87410f52f79cc256c3949b48a3548632c07c8e9943468ef8caa6250f6643be8e
  [person.jpg]=cdcbab947e46110fc2b77784ac54ddbbab2640f1e44cb5e91fc8984a9793a7d1
  [scream.jpg]=dcab7bae866fbb396e01ab27a9c8d2d40b3e80911dafb05a5fa18d1bac6b8d17
  [imagenet.labels.list]=862f0b616543c2467bf66c967c173ef748c4d11244ee223ffd13e6591735ca0b
  [imagenet.shortnames.list]=6ba751a14e6470ccaf740476ab79df657925d29d9f29311629eed20f7efb0ed5
)
photos=(dog.jpg eagle.jpg giraffe.jpg horses.jpg kite.jpg person.jpg scream.jpg)
lists=(imagenet.labels.list imagenet.shortnames.list)
classes=imagenet1k-classes.tsv
# SHA-256 of the derived class table (from the two lists above).
classes_sha256=c106702a21c2efe941d3002bed05d7231fdeea34e37f6a1b058678a2e0911c51

verified() {  # DIR NAME [HASH]
  local path=$1/$2 sum
  [[ -f $path ]] || return 1
  sum=$(sha256sum -- "$path") || return 1
  [[ ${sum%% *} == "${3:-${sha256[$2]}}" ]]
}

done_already() {
  local f
  for f in "${photos[@]}"; do verified "$target" "$f" || return 1; done
  verified "$target" "$classes" "$classes_sha256" && [[ -f $target/copyright ]]
}

give_up() {
  cat >&2 <<EOF
fetch-sample-photos: $1

The sample photos are only needed by the test of the converted EfficientNet-Lite
weights (it is skipped without them). To get them by hand: on Debian/Ubuntu,
'sudo apt-get install $package' puts them into /$package_dir/; then run this
script again.
EOF
  exit 1
}

tmp=
trap 'rm -rf -- ${tmp:+"$tmp"} "$target"/.*.partial-$$' EXIT

if done_already; then
  echo "fetch-sample-photos: $target already holds the verified files; nothing to do."
  exit 0
fi

root=/
all_sources() {
  local f
  for f in "${photos[@]}" "${lists[@]}"; do verified "$root/$package_dir" "$f" || return 1; done
}
if ! all_sources; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-sample-photos.XXXXXX")
  echo "fetch-sample-photos: downloading $package with apt-get ..."
  unpack_debian_package "$package" "$tmp" || give_up "$DEBIAN_PACKAGE_ERROR"
  root=$tmp/unpacked
  all_sources || give_up "the downloaded package does not hold the expected files (a different package version?)."
fi

mkdir -p -- "$target"
for f in "${photos[@]}"; do
  install_file "$root/$package_dir/$f" "$target" "$f"
done
install_file "$root/$copyright_file" "$target" copyright
# The first 1000 lines of darknet's lists are the ILSVRC-2012 classes; sorted by WordNet id
# they are in the class-index order of ImageNet classifiers.
partial=$target/.$classes.partial-$$
paste <(head -n 1000 "$root/$package_dir/imagenet.labels.list") <(head -n 1000 "$root/$package_dir/imagenet.shortnames.list") |
  LC_ALL=C sort >"$partial"
verified "$target" ".$classes.partial-$$" "$classes_sha256" ||
  give_up "the class table made from the package's lists is not the expected one."
mv -f -- "$partial" "$target/$classes"
echo "fetch-sample-photos: wrote ${#photos[@]} photos, $classes and the package's copyright to $target"

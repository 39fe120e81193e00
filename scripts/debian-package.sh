# Sourced by the scripts/fetch-*.sh scripts: a Debian package's files without root.
#
#   source scripts/debian-package.sh
#   unpack_debian_package PACKAGE WORK_DIR || give_up "$DEBIAN_PACKAGE_ERROR"
#       apt-get download PACKAGE into WORK_DIR, dpkg-deb -x it into WORK_DIR/unpacked/
#   install_file SOURCE TARGET_DIR NAME
#       copy SOURCE to TARGET_DIR/NAME under a hidden temporary name first, then rename, so a
#       killed run never leaves a half-written file under a final name (the caller's EXIT trap
#       removes "$TARGET_DIR"/.*.partial-$$)

# Sets DEBIAN_PACKAGE_ERROR (a sentence for the user) and returns 1 on failure.
unpack_debian_package() {
  local package=$1 work_dir=$2 debs apt_opts=()
  DEBIAN_PACKAGE_ERROR=
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    DEBIAN_PACKAGE_ERROR="apt-get and dpkg-deb are needed to fetch the Debian package '$package', and this system lacks them."
    return 1
  fi
  # As root, apt drops to the user _apt, which cannot write into our private
  # temp dir; it would fall back and print a warning, so tell it to stay root.
  [[ $EUID -eq 0 ]] && apt_opts=(-o APT::Sandbox::User=root)
  if ! (cd "$work_dir" && apt-get download "${apt_opts[@]}" "$package"); then
    DEBIAN_PACKAGE_ERROR="'apt-get download $package' failed (offline, or the package is not in this system's apt sources)."
    return 1
  fi
  debs=("$work_dir"/"$package"_*.deb)
  if ! dpkg-deb -x "${debs[0]}" "$work_dir/unpacked"; then
    DEBIAN_PACKAGE_ERROR="'dpkg-deb -x' could not unpack ${debs[0]##*/}."
    return 1
  fi
}

install_file() {
  local source=$1 target_dir=$2 name=$3
  local partial=$target_dir/.$name.partial-$$
  cp -- "$source" "$partial"
  mv -f -- "$partial" "$target_dir/$name"
}

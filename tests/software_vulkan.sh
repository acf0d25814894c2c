#!/usr/bin/env bash
# `make software-vulkan`: a software Vulkan driver in a private folder, so that the GPU route
# (`--accelerator gpu`: LiteRT's WebGPU accelerator, Dawn over Vulkan) runs on a machine without a
# GPU -- CI's -- and tests/test_gpu.py can check it against the CPU path.
#
# Debian 12's own lavapipe (Mesa 22.3) is too old for Dawn ("shaderUniform*ArrayDynamicIndexing
# required", then "No adapters found"); Mesa 25's lavapipe from bookworm-backports works. Its
# .debs and the Vulkan loader's are downloaded with apt (lists in the folder, nothing installed)
# and unpacked with dpkg -x: the system stays untouched. Trixie's build needs glibc 2.38 and does
# not load here. Dawn then selects "llvmpipe ... adapterType=CPU / Software".
#
# The folder gets env.sh, which points the loader at lavapipe (VK_DRIVER_FILES, LD_LIBRARY_PATH);
# the tests read EMSEG_VULKAN=<folder> and put the same variables into the processes they start.
set -euo pipefail
DIR=$(realpath -m "${1:-.vulkan}")
SUITE=${SUITE:-bookworm}
ARCH=$(dpkg --print-architecture)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")
APT="$DIR/apt"
rm -rf "$DIR.partial"
mkdir -p "$DIR.partial/debs" "$APT/lists/partial" "$APT/cache/archives/partial"
printf 'deb http://deb.debian.org/debian %s main\ndeb http://deb.debian.org/debian %s-backports main\n' \
    "$SUITE" "$SUITE" > "$APT/sources.list"
options=(-o "Dir::Etc::SourceList=$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
         -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "APT::Architecture=$ARCH" -qq)
apt-get "${options[@]}" update
# The driver and the loader, plus whatever of the driver's libraries this system lacks.
wanted=(libvulkan1 "mesa-vulkan-drivers/$SUITE-backports")
for dep in $(apt-cache "${options[@]}" depends --no-recommends --no-suggests "mesa-vulkan-drivers/$SUITE-backports" \
             | awk '/Depends:/ {gsub(/[<>]/, "", $2); print $2}' | sort -u); do
    dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "ok installed" || wanted+=("$dep")
done
(cd "$DIR.partial/debs" && apt-get "${options[@]}" download "${wanted[@]}" 2>&1 | grep -v "unsandboxed" || true)
for deb in "$DIR.partial/debs"/*.deb; do dpkg -x "$deb" "$DIR.partial/root"; done
LIB="$DIR/root/usr/lib/$MULTIARCH"
# The ICD file names its driver relative to the system's library path: make it absolute.
sed "s#\"library_path\": \"[^\"]*\"#\"library_path\": \"$LIB/libvulkan_lvp.so\"#" \
    "$DIR.partial/root/usr/share/vulkan/icd.d/lvp_icd.json" > "$DIR.partial/lvp_icd.json"
missing=$(ldd "$DIR.partial/root/usr/lib/$MULTIARCH/libvulkan_lvp.so" | grep "not found" || true)
[ -z "$missing" ] || { echo "lavapipe needs libraries this system lacks: $missing" >&2; exit 1; }
cat > "$DIR.partial/env.sh" <<EOF
export VK_DRIVER_FILES="$DIR/lvp_icd.json"
export LD_LIBRARY_PATH="$LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
version=$(dpkg-deb -f "$DIR.partial"/debs/mesa-vulkan-drivers_*.deb Version)
rm -rf "$DIR/root" "$DIR/lvp_icd.json" "$DIR/env.sh"
mv "$DIR.partial/root" "$DIR.partial/lvp_icd.json" "$DIR.partial/env.sh" "$DIR/"
rm -rf "$DIR.partial"
echo "software Vulkan (lavapipe, Mesa $version) in $DIR: source $DIR/env.sh"

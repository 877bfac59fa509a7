#!/bin/sh
# Installs what building and testing resnet needs on Debian, if missing:
# the compiler, cJSON, zlib, libjpeg-turbo, libpng, cairo (plots), and PyTorch for the parity
# tests (python3-torch, python3-torchvision; run with /usr/bin/python3); python3-onnx for the
# ONNX export test; OpenMPI for data-parallel training (optional at build time: the build uses
# it when present); valgrind and strace for the fault-injection tests (tests/faults.sh:
# memcheck, kills inside checkpoint writes); clang with libFuzzer and its OpenMP runtime for the
# fuzz targets (make fuzz).
set -e
PKGS="build-essential libcjson-dev zlib1g-dev libjpeg62-turbo-dev libpng-dev libcairo2-dev pkg-config dataset-fashion-mnist \
python3-torch python3-torchvision python3-numpy python3-onnx openmpi-bin libopenmpi-dev valgrind strace clang \
libclang-rt-14-dev libomp-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing

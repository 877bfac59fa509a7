# resnet: build the library, the CLI and the tests.
#   make            build/libresnet.a, build/libresnet.so, build/resnet
#   make test       build and run every test, also under sanitizers (what CI runs)
#   make SAN=1 ...  the same in build-san/ with AddressSanitizer + UBSan
#   make WERROR=1   warnings are errors (CI)
#   make MPI=0      build without MPI even when OpenMPI is installed (the
#                   default uses it when `pkg-config mpi` finds it)

CC      ?= cc
SAN     ?= 0
WERROR  ?= 0
OPT     ?= -O3
MPI     ?= auto
BUILD   := $(if $(filter 1,$(SAN)),build-san,build)
# Data-parallel training links MPI when it is there (libopenmpi-dev).
HAVE_MPI := $(if $(filter 0,$(MPI)),,$(shell pkg-config --exists mpi 2>/dev/null && echo 1))
MPI_CFLAGS := $(if $(HAVE_MPI),-DRN_HAVE_MPI $(shell pkg-config --cflags mpi))
MPI_LIBS := $(if $(HAVE_MPI),$(shell pkg-config --libs mpi))
$(info resnet: MPI $(if $(HAVE_MPI),yes ($(shell pkg-config --modversion mpi 2>/dev/null)): data-parallel training with mpirun,no (install libopenmpi-dev for data-parallel training)))
SANFL   := -fsanitize=address,undefined
CFLAGS  := -std=c11 $(OPT) -g -Wall -Wextra -fopenmp -fPIC -D_POSIX_C_SOURCE=200809L $(shell pkg-config --cflags cairo 2>/dev/null) $(MPI_CFLAGS) -Iinclude -Isrc \
           $(if $(filter 1,$(WERROR)),-Werror) \
           $(if $(filter 1,$(SAN)),$(SANFL) -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
LDFLAGS := -fopenmp $(if $(filter 1,$(SAN)),$(SANFL))
LDLIBS  := -lcjson -ljpeg -lpng -lz $(shell pkg-config --libs cairo 2>/dev/null) $(MPI_LIBS) -lpthread -lm

LIB_SRC := $(wildcard src/core/*.c src/kernels/*.c src/model/*.c src/io/*.c src/train/*.c src/data/*.c src/dist/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TESTS   := test_kernels test_safetensors test_model parity_driver optim_driver test_report test_augment test_data

.SECONDARY:

all: $(BUILD)/libresnet.a $(BUILD)/libresnet.so $(BUILD)/resnet $(TESTS:%=$(BUILD)/%) \
     $(if $(HAVE_MPI),$(BUILD)/bench_allreduce)

$(BUILD)/obj/%.o: %.c $(wildcard include/*.h src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libresnet.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libresnet.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libresnet.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/resnet: $(CLI_OBJ) $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: $(BUILD)/obj/tests/test_%.o $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/parity_driver: $(BUILD)/obj/tests/parity_driver.o $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/optim_driver: $(BUILD)/obj/tests/optim_driver.o $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# MPI_Allreduce bandwidth (BENCHMARKS.md, data-parallel projection).
$(BUILD)/bench_allreduce: bench/allreduce.c
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) $(MPI_LIBS)

# Every suite: the optimized build with the PyTorch parity tests, then the
# C tests again under AddressSanitizer + UBSan.
test: all
	$(MAKE) SAN=1 OPT=-O1 all
	./tests/run.sh build-san
	./tests/run.sh build

clean:
	rm -rf build build-san

.PHONY: all test clean

# resnet: build the library, the CLI and the tests.
#   make            build/libresnet.a, build/libresnet.so, build/resnet
#   make test       build and run every test, also under sanitizers (what CI runs)
#   make SAN=1 ...  the same in build-san/ with AddressSanitizer + UBSan
#   make WERROR=1   warnings are errors (CI)
#   make MPI=0      build without MPI even when OpenMPI is installed (the
#                   default uses it when `pkg-config mpi` finds it)
#   make install PREFIX=/usr/local [DESTDIR=...]
#                   lib/libresnet.so.VERSION (SONAME libresnet.so.MAJOR) and
#                   its links, lib/libresnet.a, include/resnet.h,
#                   lib/pkgconfig/resnet.pc, bin/resnet, share/man/man1/resnet.1
#   make fuzz       libFuzzer targets in build-fuzz/ (clang; tests/fuzz.sh runs them)

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
TESTS   := test_kernels test_safetensors test_model parity_driver optim_driver test_report test_augment test_data test_api
EXAMPLES := classify train
# The version in include/resnet.h; the SONAME carries the major number.
VERSION := $(shell sed -n 's/^\#define RN_VERSION "\(.*\)"/\1/p' include/resnet.h)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib

.SECONDARY:

all: $(BUILD)/libresnet.a $(BUILD)/libresnet.so $(BUILD)/resnet $(TESTS:%=$(BUILD)/%) $(EXAMPLES:%=$(BUILD)/examples/%) \
     $(BUILD)/bench_winograd $(if $(HAVE_MPI),$(BUILD)/bench_allreduce)

$(BUILD)/obj/%.o: %.c $(wildcard include/*.h src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libresnet.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libresnet.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libresnet.so.$(MAJOR) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/resnet: $(CLI_OBJ) $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: $(BUILD)/obj/tests/test_%.o $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(BUILD)/libresnet.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/parity_driver: $(BUILD)/obj/tests/parity_driver.o $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/optim_driver: $(BUILD)/obj/tests/optim_driver.o $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Direct against Winograd bf16 convolutions, layer by layer (BENCHMARKS.md).
$(BUILD)/bench_winograd: $(BUILD)/obj/bench/winograd.o $(BUILD)/libresnet.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# MPI_Allreduce bandwidth (BENCHMARKS.md, data-parallel projection).
$(BUILD)/bench_allreduce: bench/allreduce.c
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) $(MPI_LIBS)

# Every suite: the C tests under AddressSanitizer + UBSan, then the
# optimized build with the PyTorch parity tests and the fuzzing smoke run.
test: all
	$(MAKE) SAN=1 OPT=-O1 all
	$(MAKE) fuzz
	./tests/run.sh build-san
	./tests/run.sh build

# Installs the library, header, pkg-config file, program and man page
# under $(DESTDIR)$(PREFIX). The .pc lists the static dependencies in
# Libs.private, so `pkg-config --static --libs resnet` links libresnet.a.
install: $(BUILD)/libresnet.a $(BUILD)/libresnet.so $(BUILD)/resnet
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/libresnet.so $(DESTDIR)$(LIBDIR)/libresnet.so.$(VERSION)
	ln -sf libresnet.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libresnet.so.$(MAJOR)
	ln -sf libresnet.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libresnet.so
	install -m 644 $(BUILD)/libresnet.a $(DESTDIR)$(LIBDIR)/libresnet.a
	install -m 644 include/resnet.h $(DESTDIR)$(PREFIX)/include/resnet.h
	install -m 755 $(BUILD)/resnet $(DESTDIR)$(PREFIX)/bin/resnet
	install -m 644 man/resnet.1 $(DESTDIR)$(PREFIX)/share/man/man1/resnet.1
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|-fopenmp $(LDLIBS)|' resnet.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/resnet.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libresnet.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libresnet.so.$(MAJOR) \
	    $(DESTDIR)$(LIBDIR)/libresnet.so $(DESTDIR)$(LIBDIR)/libresnet.a $(DESTDIR)$(PREFIX)/include/resnet.h \
	    $(DESTDIR)$(PREFIX)/bin/resnet $(DESTDIR)$(PREFIX)/share/man/man1/resnet.1 \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/resnet.pc

# libFuzzer targets: the file readers and the CLI parser, built with clang
# under ASan + UBSan. The kernels are built plainly (clang needs minutes to
# instrument the AVX-512 files; build-san covers them): no target feeds
# them fuzzed data. tests/fuzz.sh runs the targets over their corpora.
FUZZ_CC   := clang
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_FL   := -std=c11 -O1 -g -Wall -Wextra -fopenmp -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc \
             $(shell pkg-config --cflags cairo 2>/dev/null) $(if $(filter 1,$(WERROR)),-Werror)
FUZZ_TGT  := safetensors idx cifar image args
FUZZ_KOBJ := $(patsubst %.c,build-fuzz/obj/%.o,$(wildcard src/kernels/*.c))
FUZZ_LOBJ := $(patsubst %.c,build-fuzz/obj/%.o,$(filter-out src/kernels/%,$(LIB_SRC)) $(filter-out src/cli/main.c,$(CLI_SRC)))

fuzz: $(FUZZ_TGT:%=build-fuzz/fuzz_%)

build-fuzz/obj/src/kernels/%.o: src/kernels/%.c $(wildcard include/*.h src/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FL) -c $< -o $@

build-fuzz/obj/%.o: %.c $(wildcard include/*.h src/*/*.h tests/fuzz/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FL) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c $< -o $@

build-fuzz/fuzz_%: build-fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_LOBJ) $(FUZZ_KOBJ)
	$(FUZZ_CC) -fopenmp $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

clean:
	rm -rf build build-san build-fuzz

.PHONY: all test clean fuzz install uninstall

# resnet: build the library, the CLI and the tests.
#   make            build/libresnet.a, build/libresnet.so, build/resnet
#   make test       build and run every test, also under sanitizers (what CI runs)
#   make SAN=1 ...  the same in build-san/ with AddressSanitizer + UBSan
#   make WERROR=1   warnings are errors (CI)
#   make fuzz       libFuzzer targets in build-fuzz/ (clang; tests/fuzz.sh runs them)

CC      ?= cc
SAN     ?= 0
WERROR  ?= 0
OPT     ?= -O3
BUILD   := $(if $(filter 1,$(SAN)),build-san,build)
SANFL   := -fsanitize=address,undefined
CFLAGS  := -std=c11 $(OPT) -g -Wall -Wextra -fopenmp -fPIC -D_POSIX_C_SOURCE=200809L $(shell pkg-config --cflags cairo 2>/dev/null) -Iinclude -Isrc \
           $(if $(filter 1,$(WERROR)),-Werror) \
           $(if $(filter 1,$(SAN)),$(SANFL) -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
LDFLAGS := -fopenmp $(if $(filter 1,$(SAN)),$(SANFL))
LDLIBS  := -lcjson -ljpeg -lpng -lz $(shell pkg-config --libs cairo 2>/dev/null) -lpthread -lm

LIB_SRC := $(wildcard src/core/*.c src/kernels/*.c src/model/*.c src/io/*.c src/train/*.c src/data/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TESTS   := test_kernels test_safetensors test_model parity_driver optim_driver test_report test_augment test_data

.SECONDARY:

all: $(BUILD)/libresnet.a $(BUILD)/libresnet.so $(BUILD)/resnet $(TESTS:%=$(BUILD)/%)

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

# Every suite: the C tests under AddressSanitizer + UBSan, then the
# optimized build with the PyTorch parity tests and the fuzzing smoke run.
test: all
	$(MAKE) SAN=1 OPT=-O1 all
	$(MAKE) fuzz
	./tests/run.sh build-san
	./tests/run.sh build

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

.PHONY: all test clean fuzz

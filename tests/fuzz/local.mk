# tests/fuzz: libFuzzer targets for the request parser, the map parser, the
# record codec (peer link, journal), the control socket and the
# configuration loader.  Built with clang and run by tests/fuzz/run.sh
# (tests/run-all.sh calls it); nothing here is built by make.  The seed
# corpora, dictionaries and known crash inputs are whole directories.
EXTRA_DIST += \
	tests/fuzz/run.sh \
	tests/fuzz/gen-corpus.sh \
	tests/fuzz/gen_corpus.c \
	tests/fuzz/fuzz.h \
	tests/fuzz/fuzz_request.c \
	tests/fuzz/fuzz_map.c \
	tests/fuzz/fuzz_wire.c \
	tests/fuzz/fuzz_ctl.c \
	tests/fuzz/fuzz_conf.c \
	tests/fuzz/RESULTS.md \
	tests/fuzz/corpus \
	tests/fuzz/dict \
	tests/fuzz/crashes

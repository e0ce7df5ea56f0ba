// more.h: a function-like macro continued over two lines.
#define ADD(a, b) \
    ((a) + (b))

// ring-defs.h: macros and an enum shared by scenarios/language (no scenario header here).
#define RING_SLOTS   8
#define RING_MASK    (RING_SLOTS - 1)
#define RING_NEXT(i) (((i) + 1) & RING_MASK)
#define PKT_TAG      'tkPR'
#include "more.h"

typedef enum _PKT_KIND {
    PktData = 1,
    PktAck,
    PktControl = 8,
    PktInvalid
} PKT_KIND;

package io.vblk.qcow2.check;

/**
 * Packed big-endian refcount entries of a refcount block held in a Java array, for widths of 1 to
 * 64 bits (refcount_order 0..6; sub-byte widths LSB first within a byte), the array twin of
 * {@code Qcow2Layout.getRefcount/setRefcount}. Stateless.
 */
final class RefcountCodec {
    private RefcountCodec() {}

    static long get(byte[] b, int order, int index) {
        switch (order) {
            case 0, 1, 2 -> {
                int bits = 1 << order;
                long bit = (long) index * bits;
                int v = b[(int) (bit >>> 3)] & 0xff;
                return (v >>> (bit & 7)) & ((1 << bits) - 1);
            }
            default -> {
                int bytes = 1 << (order - 3);
                int p = index * bytes;
                long v = 0;
                for (int i = 0; i < bytes; i++) v = (v << 8) | (b[p + i] & 0xff);
                return v;
            }
        }
    }

    static void set(byte[] b, int order, int index, long value) {
        switch (order) {
            case 0, 1, 2 -> {
                int bits = 1 << order;
                long bit = (long) index * bits;
                int p = (int) (bit >>> 3);
                int mask = ((1 << bits) - 1) << (bit & 7);
                b[p] = (byte) ((b[p] & ~mask) | (((int) value << (bit & 7)) & mask));
            }
            default -> {
                int bytes = 1 << (order - 3);
                int p = index * bytes;
                for (int i = bytes - 1; i >= 0; i--) {
                    b[p + i] = (byte) value;
                    value >>>= 8;
                }
            }
        }
    }

    static long getBE64(byte[] b, int p) {
        long v = 0;
        for (int i = 0; i < 8; i++) v = (v << 8) | (b[p + i] & 0xff);
        return v;
    }

    static void putBE64(byte[] b, int p, long v) {
        for (int i = 7; i >= 0; i--) {
            b[p + i] = (byte) v;
            v >>>= 8;
        }
    }
}

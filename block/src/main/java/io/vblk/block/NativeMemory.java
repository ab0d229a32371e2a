package io.vblk.block;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Raw access to native memory by address, for the few places that handle buffers the kernel or
 * a guest owns (IoVector slices, the AIO ring, guest RAM).
 *
 * <p>Addresses handed to these methods must come from a bounds-checked source: a
 * {@link NativeBuffer}, a translated guest region, or a mapping the caller owns. This class does no
 * checking of its own; that is the caller's contract, like a C pointer.
 */
public final class NativeMemory {
    private NativeMemory() {}

    /** The whole address space as one segment; every access is a plain intrinsic load or store. */
    public static final MemorySegment ALL = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);

    private static final ValueLayout.OfLong LONG_U = ValueLayout.JAVA_LONG_UNALIGNED;

    public static void copy(long srcAddr, long dstAddr, long bytes) {
        MemorySegment.copy(ALL, srcAddr, ALL, dstAddr, bytes);
    }

    public static void copyToArray(long srcAddr, byte[] dst, int dstOff, int len) {
        MemorySegment.copy(ALL, ValueLayout.JAVA_BYTE, srcAddr, dst, dstOff, len);
    }

    public static void copyFromArray(byte[] src, int srcOff, long dstAddr, int len) {
        MemorySegment.copy(src, srcOff, ALL, ValueLayout.JAVA_BYTE, dstAddr, len);
    }

    public static void fill(long addr, long bytes, byte value) {
        if (bytes >= (1 << 16)) {
            ALL.asSlice(addr, bytes).fill(value);
            return;
        }
        // small fills (the request path's memsets) store words directly: no slice object per call
        long word = (value & 0xffL) * 0x0101010101010101L;
        long i = 0;
        for (; i + 8 <= bytes; i += 8) {
            ALL.set(LONG_U, addr + i, word);
        }
        for (; i < bytes; i++) {
            ALL.set(ValueLayout.JAVA_BYTE, addr + i, value);
        }
    }

    /** True if {@code bytes} bytes at {@code addr} are all zero. */
    public static boolean isZero(long addr, long bytes) {
        long i = 0;
        // head up to 8-byte alignment
        while (i < bytes && ((addr + i) & 7) != 0) {
            if (ALL.get(ValueLayout.JAVA_BYTE, addr + i) != 0) return false;
            i++;
        }
        for (; i + 32 <= bytes; i += 32) {
            long a = addr + i;
            if ((ALL.get(LONG_U, a) | ALL.get(LONG_U, a + 8) | ALL.get(LONG_U, a + 16) | ALL.get(LONG_U, a + 24)) != 0) {
                return false;
            }
        }
        for (; i + 8 <= bytes; i += 8) {
            if (ALL.get(LONG_U, addr + i) != 0) return false;
        }
        for (; i < bytes; i++) {
            if (ALL.get(ValueLayout.JAVA_BYTE, addr + i) != 0) return false;
        }
        return true;
    }

    public static byte getByte(long addr) { return ALL.get(ValueLayout.JAVA_BYTE, addr); }
    public static void putByte(long addr, byte v) { ALL.set(ValueLayout.JAVA_BYTE, addr, v); }
    public static short getShortLE(long addr) { return ALL.get(ValueLayout.JAVA_SHORT_UNALIGNED, addr); }
    public static void putShortLE(long addr, short v) { ALL.set(ValueLayout.JAVA_SHORT_UNALIGNED, addr, v); }
    public static int getIntLE(long addr) { return ALL.get(ValueLayout.JAVA_INT_UNALIGNED, addr); }
    public static void putIntLE(long addr, int v) { ALL.set(ValueLayout.JAVA_INT_UNALIGNED, addr, v); }
    public static long getLongLE(long addr) { return ALL.get(LONG_U, addr); }
    public static void putLongLE(long addr, long v) { ALL.set(LONG_U, addr, v); }
}

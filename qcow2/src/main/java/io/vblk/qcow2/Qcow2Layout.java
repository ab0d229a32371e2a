package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.NativeMemory;

/**
 * Table entry helpers: L1/L2/refcount-table entry decoding (qcow2.h's qcow2_get_cluster_type,
 * l2_entry helpers), compressed descriptor decoding (qcow2_parse_compressed_l2_entry), big-endian
 * entry access in native table buffers, and refcount get/set for refcount_bits 1..64
 * (get_refcount_ro0..6 / set_refcount_ro0..6). Stateless.
 */
public final class Qcow2Layout {
    private Qcow2Layout() {}

    /** QCow2ClusterType. */
    public enum ClusterType { UNALLOCATED, ZERO_PLAIN, ZERO_ALLOC, NORMAL, COMPRESSED }

    /** Cluster type of a standard L2 entry (qcow2_get_cluster_type without extended L2). */
    public static ClusterType clusterType(long l2e, int version) {
        if ((l2e & QCOW_OFLAG_COMPRESSED) != 0) return ClusterType.COMPRESSED;
        if ((l2e & QCOW_OFLAG_ZERO) != 0 && version >= 3) {
            return (l2e & L2E_OFFSET_MASK) != 0 ? ClusterType.ZERO_ALLOC : ClusterType.ZERO_PLAIN;
        }
        return (l2e & L2E_OFFSET_MASK) != 0 ? ClusterType.NORMAL : ClusterType.UNALLOCATED;
    }

    public static long l1Offset(long l1e) {
        return l1e & L1E_OFFSET_MASK;
    }

    public static long l2Offset(long l2e) {
        return l2e & L2E_OFFSET_MASK;
    }

    public static long reftableOffset(long rte) {
        return rte & REFT_OFFSET_MASK;
    }

    public static boolean copied(long e) {
        return (e & QCOW_OFLAG_COPIED) != 0;
    }

    /** Compressed descriptor geometry for one cluster size (csize_shift/csize_mask). */
    public static int csizeShift(int clusterBits) {
        return 62 - (clusterBits - 8);
    }

    public static long csizeMask(int clusterBits) {
        return (1L << (clusterBits - 8)) - 1;
    }

    /** Host byte offset of a compressed cluster's data. */
    public static long compressedOffset(long l2e, int clusterBits) {
        return l2e & ((1L << csizeShift(clusterBits)) - 1);
    }

    /** Bytes to read for a compressed cluster: (sectors+1)*512 - (offset % 512). */
    public static int compressedSize(long l2e, int clusterBits) {
        long nbSectors = ((l2e >>> csizeShift(clusterBits)) & csizeMask(clusterBits)) + 1;
        return (int) (nbSectors * 512 - (compressedOffset(l2e, clusterBits) & 511));
    }

    /** A compressed descriptor (without the COMPRESSED flag): offset, length in bytes. */
    public static long compressedDescriptor(long hostOffset, int csize, int clusterBits) {
        long sectors = ((hostOffset + csize - 1) >> 9) - (hostOffset >> 9);
        return hostOffset | (sectors << csizeShift(clusterBits));
    }

    // ---- big-endian entries in native buffers

    public static long getBE64(long addr) {
        return Long.reverseBytes(NativeMemory.getLongLE(addr));
    }

    public static void putBE64(long addr, long v) {
        NativeMemory.putLongLE(addr, Long.reverseBytes(v));
    }

    // ---- refcounts

    /** Largest refcount for refcount_order (2^bits - 1, or Long.MAX for 64 bits: we treat 64-bit counts as signed-positive). */
    public static long maxRefcount(int refcountOrder) {
        int bits = 1 << refcountOrder;
        return bits == 64 ? Long.MAX_VALUE : (1L << bits) - 1;
    }

    /** Refcount {@code index} of a refcount block at {@code addr} (get_refcount_roN). */
    public static long getRefcount(long addr, int refcountOrder, long index) {
        switch (refcountOrder) {
            case 0, 1, 2 -> {
                int bits = 1 << refcountOrder;
                long bit = index * bits;
                int b = NativeMemory.getByte(addr + (bit >>> 3)) & 0xff;
                return (b >>> (bit & 7)) & ((1 << bits) - 1);
            }
            case 3 -> {
                return NativeMemory.getByte(addr + index) & 0xffL;
            }
            case 4 -> {
                return Short.reverseBytes(NativeMemory.getShortLE(addr + index * 2)) & 0xffffL;
            }
            case 5 -> {
                return Integer.reverseBytes(NativeMemory.getIntLE(addr + index * 4)) & 0xffffffffL;
            }
            default -> {
                return getBE64(addr + index * 8);
            }
        }
    }

    /** Sets refcount {@code index}; {@code value} must be within {@link #maxRefcount}. */
    public static void setRefcount(long addr, int refcountOrder, long index, long value) {
        switch (refcountOrder) {
            case 0, 1, 2 -> {
                int bits = 1 << refcountOrder;
                long bit = index * bits;
                long a = addr + (bit >>> 3);
                int mask = ((1 << bits) - 1) << (bit & 7);
                int b = NativeMemory.getByte(a) & 0xff;
                b = (b & ~mask) | (((int) value << (bit & 7)) & mask);
                NativeMemory.putByte(a, (byte) b);
            }
            case 3 -> NativeMemory.putByte(addr + index, (byte) value);
            case 4 -> NativeMemory.putShortLE(addr + index * 2, Short.reverseBytes((short) value));
            case 5 -> NativeMemory.putIntLE(addr + index * 4, Integer.reverseBytes((int) value));
            default -> putBE64(addr + index * 8, value);
        }
    }

    /** Refcount entries per refcount block: cluster_size * 8 / refcount_bits. */
    public static long refblockEntries(int clusterBits, int refcountOrder) {
        return 1L << (clusterBits + 3 - refcountOrder);
    }
}

package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.BlkDebugEvent;
import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.block.RequestFlags;
import io.vblk.qcow2.Qcow2Layout.ClusterType;
import java.util.Arrays;
import java.util.List;

/**
 * Guest-to-host mapping through the L1 table and L2 slices: QEMU's block/qcow2-cluster.c
 * (qcow2_get_host_offset, get_cluster_table, l2_allocate, qcow2_write_l1_entry,
 * qcow2_alloc_host_offset with handle_dependencies / handle_copied / handle_alloc /
 * calculate_l2_meta, qcow2_alloc_cluster_link_l2, qcow2_alloc_cluster_abort,
 * qcow2_subcluster_zeroize / zero_in_l2_slice, qcow2_cluster_discard / discard_in_l2_slice).
 *
 * <p>Everything here runs with the driver's {@code lock} held; the L1 table is guarded by it.
 */
final class Qcow2ClusterMap {
    private final Qcow2Driver s;
    final int clusterBits;
    final int clusterSize;
    final int l2Bits;               // log2(entries per L2 table)
    final int sliceEntries;         // entries per L2 cache slice
    final int sliceSize;
    long[] l1;                      // active L1 table, host order; guarded by lock
    long l1Offset;                  // guarded by lock
    long dependencyWaits;           // requests that waited for an in-flight allocation (statistics); guarded by lock

    /** Result of a lookup (one per request; not shared). */
    static final class Mapping {
        ClusterType type;
        long hostOffset;    // host byte offset for NORMAL and ZERO_ALLOC; compressed l2 entry for COMPRESSED
        long bytes;
    }

    Qcow2ClusterMap(Qcow2Driver s, Qcow2Header h, int sliceSize) {
        this.s = s;
        this.clusterBits = h.clusterBits;
        this.clusterSize = h.clusterSize();
        this.l2Bits = clusterBits - 3;
        this.sliceSize = sliceSize;
        this.sliceEntries = sliceSize / 8;
        this.l1Offset = h.l1TableOffset;
    }

    /** Reads the active L1 table and checks that every L2 table offset is aligned and inside the file. */
    void loadL1(int l1Size, long fileLength) throws BlockException {
        l1 = new long[l1Size];
        if (l1Size == 0) return;
        long bytes = (long) l1Size * 8;
        try (NativeBuffer b = NativeBuffer.allocate(bytes, 4096)) {
            BlockException.check(s.file.preadv(l1Offset, bytes, IoVector.of(b.address(), bytes), 0, 0), "Could not read the L1 table");
            for (int i = 0; i < l1Size; i++) {
                long e = Qcow2Layout.getBE64(b.address() + i * 8L);
                long o = Qcow2Layout.l1Offset(e);
                if (o != 0 && ((o & (clusterSize - 1)) != 0 || o > fileLength - clusterSize)) {
                    throw new BlockException(Errno.EIO, "L2 table offset 0x" + Long.toHexString(o) + " of L1 index " + i
                            + (((o & (clusterSize - 1)) != 0) ? " is not cluster aligned" : " lies beyond the end of the file"));
                }
                l1[i] = e;
            }
        }
    }

    private int l1Index(long guest) {
        long i = guest >>> (clusterBits + l2Bits);
        return i >= l1.length ? -1 : (int) i;
    }

    private int l2Index(long guest) {
        return (int) ((guest >>> clusterBits) & ((1L << l2Bits) - 1));
    }

    // ------------------------------------------------------------------ read lookup

    /** qcow2_get_host_offset: the mapping of [guest, guest+bytes) up to the first change (within one slice). */
    int getHostOffset(long guest, long bytes, Mapping out) {
        long inCluster = guest & (clusterSize - 1);
        long sliceStartGuest = guest & ~(((long) sliceEntries << clusterBits) - 1);
        long maxBytes = Math.min(bytes, sliceStartGuest + ((long) sliceEntries << clusterBits) - guest);
        int l1i = l1Index(guest);
        long l2Off = l1i < 0 ? 0 : Qcow2Layout.l1Offset(l1[l1i]);
        if (l2Off == 0) {
            out.type = ClusterType.UNALLOCATED;
            out.hostOffset = 0;
            out.bytes = maxBytes;
            return 0;
        }
        if ((l2Off & (clusterSize - 1)) != 0) {
            return s.signalCorruption("L2 table offset 0x" + Long.toHexString(l2Off) + " unaligned (L1 index " + l1i + ")");
        }
        int l2i = l2Index(guest);
        int slot = s.l2Cache.get(l2Off + (long) (l2i / sliceEntries) * sliceSize);
        if (slot < 0) return slot;
        long addr = s.l2Cache.address(slot);
        int si = l2i % sliceEntries;
        long first = Qcow2Layout.getBE64(addr + si * 8L);
        ClusterType type = Qcow2Layout.clusterType(first, s.header.version);
        long nbNeeded = Math.ceilDiv(inCluster + maxBytes, clusterSize);
        long n = 1;
        if (type == ClusterType.NORMAL || type == ClusterType.ZERO_ALLOC) {
            // data and preallocated zero clusters both have a host cluster: a run is contiguous on
            // the host and of one type (count_contiguous_subclusters)
            long host = Qcow2Layout.l2Offset(first);
            if ((host & (clusterSize - 1)) != 0) {
                s.l2Cache.put(slot);
                return s.signalCorruption("Cluster allocation offset 0x" + Long.toHexString(host) + " unaligned (L2 offset 0x" + Long.toHexString(l2Off) + ", index " + (si) + ")");
            }
            while (n < nbNeeded) {
                long e = Qcow2Layout.getBE64(addr + (si + n) * 8L);
                if (Qcow2Layout.clusterType(e, s.header.version) != type || Qcow2Layout.l2Offset(e) != host + (n << clusterBits)) break;
                n++;
            }
            out.hostOffset = host + inCluster;
        } else if (type == ClusterType.COMPRESSED) {
            out.hostOffset = first;
        } else {
            while (n < nbNeeded) {
                long e = Qcow2Layout.getBE64(addr + (si + n) * 8L);
                if (Qcow2Layout.clusterType(e, s.header.version) != type) break;
                n++;
            }
            out.hostOffset = 0;
        }
        s.l2Cache.put(slot);
        out.type = type;
        out.bytes = Math.min(maxBytes, (n << clusterBits) - inCluster);
        return 0;
    }

    // ------------------------------------------------------------------ L2 tables for writing

    /**
     * get_cluster_table: the cache slot of the L2 slice mapping {@code guest}, allocating the L2
     * table (or copying a shared one) when its L1 entry lacks COPIED. Returns slot or -errno.
     */
    int getClusterTable(long guest) {
        int l1i = l1Index(guest);
        if (l1i < 0) return -Errno.EIO; // L1 is sized for the whole disk; the block layer keeps requests inside
        long l1e = l1[l1i];
        long l2Off = Qcow2Layout.l1Offset(l1e);
        if ((l2Off & (clusterSize - 1)) != 0) {
            return s.signalCorruption("L2 table offset 0x" + Long.toHexString(l2Off) + " unaligned (L1 index " + l1i + ")");
        }
        if (!Qcow2Layout.copied(l1e) || l2Off == 0) {
            int ret = l2Allocate(l1i);
            if (ret < 0) return ret;
            l2Off = Qcow2Layout.l1Offset(l1[l1i]);
        }
        int l2i = l2Index(guest);
        return s.l2Cache.get(l2Off + (long) (l2i / sliceEntries) * sliceSize);
    }

    /** Index of {@code guest}'s entry inside its slice. */
    int sliceIndex(long guest) {
        return l2Index(guest) % sliceEntries;
    }

    /**
     * l2_allocate: a new L2 table for L1 index {@code l1i}, zeroed or copied from the old table;
     * refcount cache flushed first, table written (L2 cache flushed), then the L1 entry written
     * synchronously; the old (shared) table's reference dropped last.
     */
    private int l2Allocate(int l1i) {
        long oldL1e = l1[l1i];
        long oldL2 = Qcow2Layout.l1Offset(oldL1e);
        long l2Off = s.refcount.allocClusters(1);
        if (l2Off < 0) return (int) l2Off;
        if (l2Off == 0) return s.signalCorruption("Preventing invalid allocation of L2 table at offset 0");
        int ret = s.refblockCache.flush();
        if (ret < 0) {
            s.refcount.free(l2Off, clusterSize);
            return ret;
        }
        for (int sl = 0; sl < clusterSize / sliceSize; sl++) {
            int slot = s.l2Cache.getEmpty(l2Off + (long) sl * sliceSize);
            if (slot < 0) {
                ret = slot;
                break;
            }
            if (oldL2 == 0) {
                NativeMemory.fill(s.l2Cache.address(slot), sliceSize, (byte) 0);
            } else {
                s.file.event(BlkDebugEvent.L2_ALLOC_COW_READ);
                int old = s.l2Cache.get(oldL2 + (long) sl * sliceSize);
                if (old < 0) {
                    s.l2Cache.put(slot);
                    ret = old;
                    break;
                }
                NativeMemory.copy(s.l2Cache.address(old), s.l2Cache.address(slot), sliceSize);
                s.l2Cache.put(old);
            }
            s.l2Cache.markDirty(slot);
            s.l2Cache.put(slot);
        }
        if (ret >= 0) {
            s.file.event(BlkDebugEvent.L2_ALLOC_WRITE);
            ret = s.l2Cache.flush();
        }
        if (ret >= 0) {
            l1[l1i] = l2Off | QCOW_OFLAG_COPIED;
            ret = writeL1Entry(l1i);
            if (ret < 0) l1[l1i] = oldL1e;
        }
        if (ret < 0) {
            for (int sl = 0; sl < clusterSize / sliceSize; sl++) {
                s.l2Cache.discardCluster(l2Off + (long) sl * sliceSize, sliceSize);
            }
            s.refcount.free(l2Off, clusterSize);
            return ret;
        }
        if (oldL2 != 0) {
            s.refcount.free(oldL2, clusterSize);
        }
        return 0;
    }

    /** qcow2_write_l1_entry: writes the 512-byte-aligned group of L1 entries holding {@code l1i}, synchronously. */
    int writeL1Entry(int l1i) {
        int per = 512 / 8;
        int first = l1i & ~(per - 1);
        int n = Math.min(per, l1.length - first);
        try (NativeBuffer b = NativeBuffer.allocate(512, 512)) {
            for (int i = 0; i < n; i++) Qcow2Layout.putBE64(b.address() + i * 8L, l1[first + i]);
            long off = l1Offset + first * 8L;
            int ret = s.overlap.checkMetadataWrite(null, off, n * 8L);
            if (ret < 0) return ret;
            s.file.event(BlkDebugEvent.L1_UPDATE);
            ret = s.file.pwritev(off, n * 8L, IoVector.of(b.address(), n * 8L), 0, 0);
            if (ret < 0) return ret;
            return s.file.flush();
        }
    }

    /**
     * qcow2_grow_l1_table: a larger L1 table (exactly {@code minSize} entries, or grown by 1.5x
     * until large enough) is allocated, the refcount cache flushed, the table written and synced,
     * then the header's l1_size and l1_table_offset (12 bytes at 36) switched with a synced write,
     * then the old table freed.
     */
    int growL1(long minSize, boolean exact) {
        if (minSize <= l1.length) return 0;
        long newSize = minSize;
        if (!exact) {
            newSize = Math.max(l1.length, 1);
            while (newSize < minSize) newSize = Math.ceilDiv(newSize * 3, 2);
        }
        if (newSize * 8 > QCOW_MAX_L1_SIZE) return -Errno.EFBIG;
        long bytes = newSize * 8;
        long clustersN = Math.ceilDiv(bytes, clusterSize);
        s.file.event(BlkDebugEvent.L1_GROW_ALLOC_TABLE);
        long newOff = s.refcount.allocClusters(clustersN);
        if (newOff < 0) return (int) newOff;
        int ret = s.refblockCache.flush();
        long[] nl1 = Arrays.copyOf(l1, (int) newSize);
        if (ret >= 0) ret = s.overlap.checkMetadataWrite(null, newOff, bytes);
        if (ret >= 0) {
            try (NativeBuffer b = NativeBuffer.allocate(clustersN * clusterSize, 4096)) {
                b.fill(0, clustersN * clusterSize, (byte) 0);
                for (int i = 0; i < newSize; i++) Qcow2Layout.putBE64(b.address() + i * 8L, nl1[i]);
                s.file.event(BlkDebugEvent.L1_GROW_WRITE_TABLE);
                ret = s.file.pwritev(newOff, bytes, IoVector.of(b.address(), bytes), 0, 0);
                if (ret >= 0) ret = s.file.flush();
            }
        }
        if (ret >= 0) {
            try (NativeBuffer b = NativeBuffer.allocate(512, 512)) {
                NativeMemory.putIntLE(b.address(), Integer.reverseBytes((int) newSize));
                Qcow2Layout.putBE64(b.address() + 4, newOff);
                s.file.event(BlkDebugEvent.L1_GROW_ACTIVATE_TABLE);
                ret = s.file.pwritev(OFF_L1_SIZE, 12, IoVector.of(b.address(), 12), 0, 0);
                if (ret >= 0) ret = s.file.flush();
            }
        }
        if (ret < 0) {
            s.refcount.free(newOff, clustersN * clusterSize);
            return ret;
        }
        long oldOff = l1Offset;
        long oldBytes = l1.length * 8L;
        l1 = nl1;
        l1Offset = newOff;
        s.header.l1Size = (int) newSize;
        s.header.l1TableOffset = newOff;
        if (oldBytes > 0) s.refcount.free(oldOff, oldBytes);
        return 0;
    }

    // ------------------------------------------------------------------ allocation for writes

    /** Output of {@link #allocHostOffset}. */
    static final class Alloc {
        long hostOffset;
        long bytes;
        final List<Qcow2L2Meta> metas = new java.util.ArrayList<>();
    }

    private final long[] cur = new long[2]; // {bytes of this piece, expected/actual host offset}; guarded by lock

    /**
     * qcow2_alloc_host_offset: maps [guest, guest+bytes) for writing to one host-contiguous range,
     * possibly shorter, creating QCowL2Meta entries for new clusters. May wait (with the lock
     * released) for a conflicting in-flight allocation and restart.
     */
    int allocHostOffset(long guest, long bytes, Alloc out) {
        long[] cur = this.cur;
        while (true) {
            out.metas.clear();
            long start = guest;
            long remaining = bytes;
            long hostStart = -1;
            boolean restart = false;
            while (remaining > 0) {
                cur[0] = remaining;
                int ret = handleDependencies(start, cur, out.metas);
                if (ret == -Errno.EAGAIN) {
                    restart = true;
                    break;
                }
                if (ret < 0) return ret;
                if (cur[0] == 0) break;
                cur[1] = hostStart == -1 ? -1 : hostStart + (start - guest);
                ret = handleCopied(start, cur);
                if (ret < 0) return ret;
                if (ret == 0) {
                    if (cur[0] == 0) break;
                    ret = handleAlloc(start, cur, out.metas);
                    if (ret < 0) return ret;
                    if (ret == 0) break;
                }
                if (hostStart == -1) hostStart = cur[1];
                start += cur[0];
                remaining -= cur[0];
            }
            if (restart) continue;
            out.hostOffset = hostStart;
            out.bytes = bytes - remaining;
            return 0;
        }
    }

    /**
     * handle_dependencies: an in-flight allocation overlapping [start, start+cur[0]) either
     * shortens the request (it starts before the busy span) or, if nothing is held yet, makes
     * it wait on that allocation's queue and return -EAGAIN; if metas are held, cur[0] becomes 0.
     */
    private int handleDependencies(long start, long[] cur, List<Qcow2L2Meta> held) {
        long end = start + cur[0];
        for (int i = 0; i < s.clusterAllocs.size(); i++) {
            Qcow2L2Meta old = s.clusterAllocs.get(i);
            long oldStart = old.cowStart() & ~(long) (clusterSize - 1);
            long oldEnd = Math.ceilDiv(old.cowEnd(), clusterSize) * clusterSize;
            if (end <= oldStart || start >= oldEnd) continue;
            if (start < oldStart) {
                cur[0] = oldStart - start;
                end = oldStart;
            } else {
                if (!held.isEmpty()) {
                    cur[0] = 0;
                    return 0;
                }
                dependencyWaits++;
                old.dependentRequests.await(s.lock);
                return -Errno.EAGAIN;
            }
        }
        return 0;
    }

    /**
     * handle_copied: host-contiguous clusters with COPIED (refcount 1, writable in place) from
     * {@code start}; cur[1] is the expected host offset or -1. Returns 1 and shortens cur[0], or 0.
     */
    private int handleCopied(long start, long[] cur) {
        long expected = cur[1];
        int slot = getClusterTable(start);
        if (slot < 0) return slot;
        long addr = s.l2Cache.address(slot);
        int si = sliceIndex(start);
        long inCluster = start & (clusterSize - 1);
        long nb = Math.min(Math.ceilDiv(inCluster + cur[0], clusterSize), sliceEntries - si);
        long e = Qcow2Layout.getBE64(addr + si * 8L);
        int ret = 0;
        if (Qcow2Layout.clusterType(e, s.header.version) == ClusterType.NORMAL && Qcow2Layout.copied(e)) {
            long host = Qcow2Layout.l2Offset(e);
            if ((host & (clusterSize - 1)) != 0) {
                s.l2Cache.put(slot);
                return s.signalCorruption("Cluster allocation offset 0x" + Long.toHexString(host) + " unaligned");
            }
            if (expected != -1 && host + inCluster != expected) {
                cur[0] = 0;
            } else {
                long n = 1;
                while (n < nb) {
                    long e2 = Qcow2Layout.getBE64(addr + (si + n) * 8L);
                    if (Qcow2Layout.clusterType(e2, s.header.version) != ClusterType.NORMAL || !Qcow2Layout.copied(e2)
                            || Qcow2Layout.l2Offset(e2) != host + (n << clusterBits)) break;
                    n++;
                }
                cur[0] = Math.min(cur[0], (n << clusterBits) - inCluster);
                cur[1] = host + inCluster;
                ret = 1;
            }
        } else {
            cur[0] = Math.min(cur[0], (nb << clusterBits) - inCluster);
        }
        s.l2Cache.put(slot);
        return ret;
    }

    /** True if writing into a cluster with entry {@code e} needs a new cluster (cluster_needs_new_alloc). */
    private boolean needsAlloc(long e) {
        ClusterType t = Qcow2Layout.clusterType(e, s.header.version);
        return !(t == ClusterType.NORMAL && Qcow2Layout.copied(e));
    }

    /**
     * handle_alloc: new clusters for the clusters from {@code start} that need them (unallocated,
     * zero, compressed, or shared), contiguous and, when a piece precedes, right after it
     * (qcow2_alloc_clusters_at). Creates the QCowL2Meta (calculate_l2_meta). Returns 1, or 0
     * with cur[0] = 0 when nothing could be allocated contiguously.
     */
    private int handleAlloc(long start, long[] cur, List<Qcow2L2Meta> metas) {
        long expected = cur[1];
        int slot = getClusterTable(start);
        if (slot < 0) return slot;
        long addr = s.l2Cache.address(slot);
        int si = sliceIndex(start);
        long inCluster = start & (clusterSize - 1);
        long nb = Math.min(Math.ceilDiv(inCluster + cur[0], clusterSize), sliceEntries - si);
        nb = Math.min(nb, Integer.MAX_VALUE >> clusterBits);
        boolean zeroSrc = s.backing == null;
        long n = 0;
        while (n < nb) {
            long e = Qcow2Layout.getBE64(addr + (si + n) * 8L);
            if (!needsAlloc(e)) break;
            ClusterType t = Qcow2Layout.clusterType(e, s.header.version);
            if (!(t == ClusterType.ZERO_PLAIN || t == ClusterType.ZERO_ALLOC || (t == ClusterType.UNALLOCATED && s.backing == null))) {
                zeroSrc = false;
            }
            n++;
        }
        s.l2Cache.put(slot);
        if (n == 0) {
            cur[0] = 0;
            return 0;
        }
        long allocOffset;
        if (expected != -1) {
            if ((expected & (clusterSize - 1)) != 0) {
                cur[0] = 0;
                return 0;
            }
            long got = s.refcount.allocClustersAt(expected, n);
            if (got < 0) return (int) got;
            if (got == 0) {
                cur[0] = 0;
                return 0;
            }
            n = got;
            allocOffset = expected;
        } else {
            allocOffset = s.refcount.allocClusters(n);
            if (allocOffset < 0) return (int) allocOffset;
        }
        if (allocOffset == 0 || (allocOffset & (clusterSize - 1)) != 0) {
            return s.signalCorruption("Preventing invalid cluster allocation at 0x" + Long.toHexString(allocOffset));
        }
        long covered = Math.min(cur[0], (n << clusterBits) - inCluster);
        long guestCluster = start - inCluster;
        long cowEndOffset = inCluster + covered;
        Qcow2L2Meta m = new Qcow2L2Meta(guestCluster, allocOffset, (int) n, inCluster, cowEndOffset,
                (n << clusterBits) - cowEndOffset, zeroSrc);
        metas.add(m);
        s.clusterAllocs.add(m);
        cur[0] = covered;
        cur[1] = allocOffset + inCluster;
        return 1;
    }

    /**
     * qcow2_alloc_cluster_link_l2: points the L2 entries at the new clusters (offset | COPIED),
     * after marking the image dirty (lazy refcounts) or making the L2 cache depend on the refcount
     * cache; then drops the references of the replaced clusters.
     */
    int linkL2(Qcow2L2Meta m) {
        int ret;
        if (s.lazyRefcounts) {
            ret = s.markDirty();
            if (ret < 0) return ret;
        } else {
            ret = s.l2Cache.setDependency(s.refblockCache);
            if (ret < 0) return ret;
        }
        // data and COW must reach the disk before the entries that point at them
        s.l2Cache.dependsOnFlush();
        int slot = getClusterTable(m.offset);
        if (slot < 0) return slot;
        long addr = s.l2Cache.address(slot);
        int si = sliceIndex(m.offset);
        long[] old = new long[m.nbClusters];
        int nOld = 0;
        s.file.event(BlkDebugEvent.L2_UPDATE);
        s.l2Cache.markDirty(slot);
        for (int i = 0; i < m.nbClusters; i++) {
            long a = addr + (si + i) * 8L;
            long e = Qcow2Layout.getBE64(a);
            ClusterType t = Qcow2Layout.clusterType(e, s.header.version);
            if (!m.keepOldClusters && (t == ClusterType.NORMAL || t == ClusterType.ZERO_ALLOC || t == ClusterType.COMPRESSED)) {
                old[nOld++] = e;
            }
            Qcow2Layout.putBE64(a, (m.allocOffset + ((long) i << clusterBits)) | QCOW_OFLAG_COPIED);
        }
        s.l2Cache.put(slot);
        for (int i = 0; i < nOld; i++) {
            s.refcount.freeAny(old[i]);
        }
        return 0;
    }

    /** qcow2_alloc_cluster_abort: frees the clusters of a failed allocation. */
    void allocAbort(Qcow2L2Meta m) {
        if (!m.keepOldClusters) {
            s.refcount.free(m.allocOffset, (long) m.nbClusters << clusterBits);
        }
    }

    // ------------------------------------------------------------------ zero writes and discard

    /**
     * qcow2_subcluster_zeroize / zero_in_l2_slice for whole clusters [guest, guest+bytes): ZERO
     * entries (v3); with MAY_UNMAP, or for compressed clusters, the old cluster is freed. v2 has
     * no ZERO bit: without a backing file the clusters are discarded, with one -ENOTSUP.
     */
    int zeroize(long guest, long bytes, int flags) {
        if (s.header.version < 3) {
            if (s.backing != null) return -Errno.ENOTSUP;
            return discard(guest, bytes, true);
        }
        boolean unmapAllowed = (flags & RequestFlags.MAY_UNMAP) != 0;
        long end = guest + bytes;
        while (guest < end) {
            int slot = getClusterTable(guest);
            if (slot < 0) return slot;
            long addr = s.l2Cache.address(slot);
            int si = sliceIndex(guest);
            long n = Math.min((end - guest) >>> clusterBits, sliceEntries - si);
            long[] old = new long[(int) n];
            int nOld = 0;
            for (int i = 0; i < n; i++) {
                long a = addr + (si + i) * 8L;
                long e = Qcow2Layout.getBE64(a);
                ClusterType t = Qcow2Layout.clusterType(e, s.header.version);
                boolean allocated = t == ClusterType.NORMAL || t == ClusterType.ZERO_ALLOC || t == ClusterType.COMPRESSED;
                boolean unmap = t == ClusterType.COMPRESSED || (unmapAllowed && allocated);
                long ne = (unmap ? 0 : e) | QCOW_OFLAG_ZERO;
                if (ne == e) continue;
                if (unmap) old[nOld++] = e;
                s.l2Cache.markDirty(slot);
                Qcow2Layout.putBE64(a, ne);
            }
            s.l2Cache.put(slot);
            for (int i = 0; i < nOld; i++) s.refcount.freeAny(old[i]);
            guest += n << clusterBits;
        }
        return 0;
    }

    /**
     * qcow2_cluster_discard / discard_in_l2_slice for whole clusters: v3 entries become ZERO when
     * allocated or when a backing file exists (so they never read backing data again), v2 (and
     * full discards) entries become 0; the old clusters are freed.
     */
    int discard(long guest, long bytes, boolean fullDiscard) {
        long end = guest + bytes;
        while (guest < end) {
            int l1i = l1Index(guest);
            long n0 = Math.min(Math.ceilDiv(end - guest, clusterSize), sliceEntries - sliceIndex(guest));
            if (l1i < 0 || (Qcow2Layout.l1Offset(l1[l1i]) == 0 && (fullDiscard || s.backing == null || s.header.version < 3))) {
                guest += n0 << clusterBits;
                continue;
            }
            int slot = getClusterTable(guest);
            if (slot < 0) return slot;
            long addr = s.l2Cache.address(slot);
            int si = sliceIndex(guest);
            long[] old = new long[(int) n0];
            int nOld = 0;
            for (int i = 0; i < n0; i++) {
                long a = addr + (si + i) * 8L;
                long e = Qcow2Layout.getBE64(a);
                ClusterType t = Qcow2Layout.clusterType(e, s.header.version);
                boolean allocated = t == ClusterType.NORMAL || t == ClusterType.ZERO_ALLOC || t == ClusterType.COMPRESSED;
                long ne;
                if (fullDiscard || s.header.version < 3) {
                    ne = 0;
                } else if (s.backing != null || allocated) {
                    ne = QCOW_OFLAG_ZERO;
                } else {
                    continue;
                }
                if (ne == e) continue;
                s.l2Cache.markDirty(slot);
                Qcow2Layout.putBE64(a, ne);
                if (allocated) old[nOld++] = e;
            }
            s.l2Cache.put(slot);
            for (int i = 0; i < nOld; i++) s.refcount.freeAny(old[i]);
            guest += n0 << clusterBits;
        }
        return 0;
    }
}

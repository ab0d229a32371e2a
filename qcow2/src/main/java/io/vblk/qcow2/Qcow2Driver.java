package io.vblk.qcow2;

import static io.vblk.qcow2.Qcow2Constants.*;

import io.vblk.block.BlkDebugEvent;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLimits;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.BlockStatus;
import io.vblk.block.CoMutex;
import io.vblk.block.Errno;
import io.vblk.block.IoVector;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.block.RequestFlags;
import io.vblk.block.Sizes;
import io.vblk.qcow2.Qcow2Layout.ClusterType;
import io.vblk.qcow2.check.Qcow2Check;
import java.io.File;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The qcow2 format driver: QEMU's block/qcow2.c (BDRVQcow2State plus qcow2_open, qcow2_co_preadv_part,
 * qcow2_co_pwritev_part / qcow2_co_pwritev_task, merge_cow, handle_alloc_space, perform_cow,
 * qcow2_co_pwrite_zeroes, qcow2_co_pdiscard, qcow2_co_flush_to_os, qcow2_mark_dirty/clean,
 * qcow2_signal_corruption, qcow2_close).
 *
 * <p>Locking: {@link #lock} is QEMU's {@code s->lock}. It guards every piece of metadata state:
 * the L1 table, the refcount table, both caches, {@link #clusterAllocs}, the header copy and the
 * dirty state. It is held while metadata I/O runs (the coroutine parks holding it) and released
 * around guest data I/O and COW, exactly where QEMU drops it.
 */
public final class Qcow2Driver extends BlockDriver {
    final BlockNode file;
    BlockNode backing;                                   // set at open / attachBacking, read-only after
    final Qcow2Header header;                            // guarded by lock
    final CoMutex lock = new CoMutex();
    final Qcow2Refcount refcount;
    final Qcow2ClusterMap clusters;
    final Qcow2Cache l2Cache;
    final Qcow2Cache refblockCache;
    final Qcow2OverlapCheck overlap;
    final Qcow2Snapshots snapshots;
    final List<Qcow2L2Meta> clusterAllocs = new ArrayList<>(); // in-flight allocations; guarded by lock
    private final Qcow2ClusterMap.Mapping mapScratch = new Qcow2ClusterMap.Mapping(); // guarded by lock
    private final Qcow2ClusterMap.Alloc allocScratch = new Qcow2ClusterMap.Alloc();   // guarded by lock
    private int dataWritesInFlight;                      // mapped guest writes doing I/O; guarded by lock
    private final io.vblk.block.CoQueue dataWritesDone = new io.vblk.block.CoQueue(); // waiters for dataWritesInFlight == 0
    final boolean lazyRefcounts;
    private final boolean readOnly;
    private boolean dirtyOnDisk;                         // dirty bit written; guarded by lock
    private volatile boolean broken;                     // fatal corruption signalled: all I/O fails
    private volatile boolean cleanSinceFlush = true;     // no metadata change since the last flush_to_os

    private Qcow2Driver(BlockNode node, BlockOptions opts) throws BlockException {
        this.readOnly = node.isReadOnly();
        BlockChild fc = node.openChild("file", BlockChild.Role.FILE, true);
        this.file = fc.node();
        try {
            long fileLength = file.getLength();
            if (fileLength < 0) throw new BlockException((int) -fileLength, "Could not get the image length: " + Errno.describe((int) -fileLength));
            byte[] first = readBytes(0, (int) Math.min(fileLength, 512));
            Qcow2Header probe = null;
            if (first.length >= V2_HEADER_SIZE) {
                int cb = ByteBuffer.wrap(first).getInt(20);
                if (cb >= MIN_CLUSTER_BITS && cb <= MAX_CLUSTER_BITS && first.length == 512) {
                    first = readBytes(0, (int) Math.min(fileLength, 1L << cb));
                }
            }
            probe = Qcow2Header.parse(first);
            this.header = probe;
            header.checkInsideFile(fileLength);
            if (header.cryptMethod != QCOW_CRYPT_NONE) {
                throw new BlockException(Errno.ENOTSUP, "qcow2: encrypted images are not supported (crypt_method " + header.cryptMethod + ")");
            }
            if ((header.incompatibleFeatures & QCOW2_INCOMPAT_DATA_FILE) != 0) {
                throw new BlockException(Errno.ENOTSUP, "qcow2: images with an external data file are not supported");
            }
            if ((header.incompatibleFeatures & QCOW2_INCOMPAT_EXTL2) != 0) {
                throw new BlockException(Errno.ENOTSUP, "qcow2: images with subclusters (extended L2 entries) are not supported");
            }
            if (header.compressionType() != QCOW2_COMPRESSION_TYPE_ZLIB) {
                throw new BlockException(Errno.ENOTSUP, "qcow2: compression type zstd is not supported");
            }
            if (!readOnly && (header.incompatibleFeatures & QCOW2_INCOMPAT_CORRUPT) != 0) {
                throw new BlockException(Errno.EACCES, "qcow2: Image is corrupt; cannot be opened read/write (run 'qemu-img check -r all')");
            }
            String lazy = opts.remove("lazy-refcounts");
            boolean lz = lazy == null ? (header.compatibleFeatures & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0 : parseBool("lazy-refcounts", lazy);
            if (lz && header.version < 3) {
                throw new BlockException(Errno.EINVAL, "Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level");
            }
            this.lazyRefcounts = lz;
            String ov = opts.remove("overlap-check");
            if (ov != null && !List.of("none", "constant", "cached", "all").contains(ov)) {
                throw new BlockException(Errno.EINVAL, "Unsupported value '" + ov + "' for qcow2 option 'overlap-check'");
            }
            // cache sizes (read_cache_sizes): L2 up to 32 MiB or the whole table; 4 KiB slices when it cannot cover the disk
            int cs = header.clusterSize();
            long maxL2 = Math.max((long) MIN_L2_CACHE_SIZE, Math.ceilDiv(header.size, (long) cs * (cs / 8))) * cs;
            long l2Bytes = Math.min(maxL2, DEFAULT_L2_CACHE_MAX_SIZE);
            String v = opts.remove("l2-cache-size");
            if (v != null) l2Bytes = Math.min(Math.max(Sizes.parse(v), (long) MIN_L2_CACHE_SIZE * cs), maxL2);
            int slice = l2Bytes >= maxL2 ? cs : Math.min(cs, DEFAULT_L2_SLICE_SIZE);
            v = opts.remove("l2-cache-entry-size");
            if (v != null) {
                long e = Sizes.parse(v);
                if (e < 512 || e > cs || Long.bitCount(e) != 1) {
                    throw new BlockException(Errno.EINVAL, "L2 cache entry size must be a power of two between 512 and the cluster size (" + cs + ")");
                }
                slice = (int) e;
            }
            long rcBytes = (long) MIN_REFCOUNT_CACHE_SIZE * cs;
            v = opts.remove("refcount-cache-size");
            if (v != null) rcBytes = Math.max(Sizes.parse(v), rcBytes);
            int l2Entries = (int) Math.max(MIN_L2_CACHE_SIZE, l2Bytes / slice);
            this.l2Cache = new Qcow2Cache("l2", this, l2Entries, slice, BlkDebugEvent.L2_LOAD, BlkDebugEvent.L2_UPDATE);
            this.refblockCache = new Qcow2Cache("refcount", this, (int) Math.min(rcBytes / cs, 1 << 16), cs,
                    BlkDebugEvent.REFBLOCK_LOAD, BlkDebugEvent.REFBLOCK_UPDATE_PART);
            this.refcount = new Qcow2Refcount(this, header);
            this.clusters = new Qcow2ClusterMap(this, header, slice);
            this.overlap = new Qcow2OverlapCheck(this, ov == null ? "cached" : ov);
            refcount.load(fileLength);
            clusters.loadL1(header.l1Size, fileLength);
            this.snapshots = Qcow2Snapshots.read(file, header, fileLength);
            if (!readOnly && (header.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) != 0) {
                // a dirty image (lazy refcounts, unclean shutdown) gets its refcounts rebuilt before use
                warn("image is dirty; repairing its refcounts");
                repairDirty();
            }
            openBacking(node, opts);
            if (!readOnly && header.version >= 3 && header.autoclearFeatures != 0) {
                // we maintain no bitmaps and know no other autoclear bit: clear them before any write
                header.autoclearFeatures = 0;
                BlockException.check(writeHeader(), "Could not update the qcow2 header");
            }
        } catch (BlockException | RuntimeException e) {
            closeBuffers();
            throw e;
        }
    }

    /**
     * qcow2_do_open's repair of a dirty image (lazy refcounts after an unclean shutdown): runs the
     * checker with FIX_ERRORS | FIX_LEAKS ({@link Qcow2Check#repairDirty}), which fixes or rebuilds
     * the refcounts, fixes COPIED flags and clears the dirty bit, all on the file and flushed. A
     * rebuild moves the refcount table, so its location is read back from the header on disk and
     * the refcount table and the L1 table (COPIED flags) are loaded again. Runs during open,
     * before anyone uses the driver; the caches hold nothing yet.
     */
    private void repairDirty() throws BlockException {
        Qcow2Check.repairDirty(file, header);
        long fileLength = file.getLength();
        if (fileLength < 0) throw new BlockException((int) -fileLength, "Could not get the image length: " + Errno.describe((int) -fileLength));
        Qcow2Header onDisk = Qcow2Header.parse(readBytes(0, (int) Math.min(fileLength, header.clusterSize())));
        if ((onDisk.incompatibleFeatures & QCOW2_INCOMPAT_DIRTY) != 0) {
            throw new BlockException(Errno.EIO, "Could not repair dirty image: the dirty bit is still set");
        }
        header.refcountTableOffset = onDisk.refcountTableOffset;
        header.refcountTableClusters = onDisk.refcountTableClusters;
        header.incompatibleFeatures = onDisk.incompatibleFeatures;
        header.checkInsideFile(fileLength);
        refcount.tableOffset = header.refcountTableOffset;
        refcount.tableClusters = header.refcountTableClusters;
        refcount.freeClusterIndex = 0;
        refcount.load(fileLength);
        clusters.loadL1(header.l1Size, fileLength);
    }

    private static boolean parseBool(String key, String v) throws BlockException {
        return switch (v) {
            case "on", "true", "yes" -> true;
            case "off", "false", "no" -> false;
            default -> throw new BlockException(Errno.EINVAL, "Parameter '" + key + "' expects 'on' or 'off'");
        };
    }

    private void openBacking(BlockNode node, BlockOptions opts) throws BlockException {
        String b = opts.remove("backing");
        if (b != null) {
            if (b.isEmpty() || b.equals("null")) return; // backing=null: no backing file
            throw new BlockException(Errno.EINVAL, "qcow2: option 'backing' takes only null; use backing.* options");
        }
        BlockChild c = node.openChild("backing", BlockChild.Role.BACKING, false);
        if (c != null) {
            backing = c.node();
            return;
        }
        if (header.backingFile == null) return;
        String path = header.backingFile;
        String me = file.filename();
        if (!path.startsWith("/") && me != null && !path.contains(":")) {
            File dir = new File(me).getAbsoluteFile().getParentFile();
            if (dir != null) path = new File(dir, path).getPath();
        }
        String fmt = header.backingFormat;
        BlockOptions bo = new BlockOptions();
        if (fmt == null || fmt.equals("file")) {
            bo.put("driver", "file").put("filename", path);
        } else {
            bo.put("driver", fmt).put("file.driver", "file").put("file.filename", path);
        }
        try {
            backing = node.openChild("backing", BlockChild.Role.BACKING, bo).node();
        } catch (BlockException e) {
            throw new BlockException(e.errno(), "Could not open backing file '" + header.backingFile + "': " + e.getMessage(), e);
        }
    }

    /** Attaches a backing node after open (as blockdev-snapshot / bdrv_set_backing_hd); for tests and tools. */
    public void attachBacking(BlockNode b) {
        node.attachChild("backing", BlockChild.Role.BACKING, b);
        this.backing = b;
    }

    private byte[] readBytes(long off, int len) throws BlockException {
        byte[] out = new byte[len];
        if (len == 0) return out;
        try (NativeBuffer b = NativeBuffer.allocate(len, 4096)) {
            BlockException.check(file.preadv(off, len, IoVector.of(b.address(), len), 0, 0), "Could not read the image header");
            b.copyTo(0, out, 0, len);
        }
        return out;
    }

    /** The {@code qcow2} driver factory (probe by magic). */
    public static final class Factory implements io.vblk.block.BlockDriverFactory {
        @Override
        public String name() {
            return "qcow2";
        }

        @Override
        public BlockDriver open(BlockNode node, BlockOptions options) throws BlockException {
            return new Qcow2Driver(node, options);
        }

        @Override
        public int probe(byte[] firstSector, String filename) {
            if (firstSector.length >= 8 && ByteBuffer.wrap(firstSector).getInt(0) == QCOW_MAGIC) {
                int v = ByteBuffer.wrap(firstSector).getInt(4);
                return v >= 2 ? 100 : 0;
            }
            return 0;
        }
    }

    @Override
    public String driverName() {
        return "qcow2";
    }

    /** A copy of the in-memory header (for info tools and tests). */
    public Qcow2Header headerSnapshot() {
        return header;
    }

    // ------------------------------------------------------------------ small helpers

    void warn(String msg) {
        System.err.println("qcow2: " + msg);
    }

    /**
     * qcow2_signal_corruption (fatal): prints the message, sets the corrupt bit in the image (unless
     * read-only) and fails every later request with EIO. Returns -EIO.
     */
    int signalCorruption(String msg) {
        warn("Marking image as corrupt: " + msg + "; further corruption events will be suppressed");
        if (!broken && !readOnly) {
            broken = true;
            header.incompatibleFeatures |= QCOW2_INCOMPAT_CORRUPT;
            writeBE64Sync(OFF_INCOMPATIBLE_FEATURES, header.incompatibleFeatures);
        }
        broken = true;
        return -Errno.EIO;
    }

    /** Writes one big-endian u64 at {@code off} of the file and flushes (bdrv_pwrite_sync). */
    int writeBE64Sync(long off, long value) {
        try (NativeBuffer b = NativeBuffer.allocate(8, 8)) {
            Qcow2Layout.putBE64(b.address(), value);
            int ret = file.pwritev(off, 8, IoVector.of(b.address(), 8), 0, 0);
            if (ret < 0) return ret;
            return file.flush();
        }
    }

    /** qcow2_update_header: rewrites cluster 0's header, extensions and backing name, synchronously. */
    int writeHeader() {
        byte[] h;
        try {
            h = header.serialize();
        } catch (BlockException e) {
            warn(e.getMessage());
            return -e.errno();
        }
        try (NativeBuffer b = NativeBuffer.allocate(h.length, 4096)) {
            b.copyFrom(h, 0, 0, h.length);
            int ret = file.pwritev(0, h.length, IoVector.of(b.address(), h.length), 0, 0);
            if (ret < 0) return ret;
            return file.flush();
        }
    }

    /** qcow2_mark_dirty: sets the dirty bit on disk (synced) before the first L2 link under lazy refcounts. */
    int markDirty() {
        if (dirtyOnDisk) return 0;
        int ret = writeBE64Sync(OFF_INCOMPATIBLE_FEATURES, header.incompatibleFeatures | QCOW2_INCOMPAT_DIRTY);
        if (ret < 0) return ret;
        header.incompatibleFeatures |= QCOW2_INCOMPAT_DIRTY;
        dirtyOnDisk = true;
        return 0;
    }

    /** qcow2_mark_clean: flushes both caches, then clears the dirty bit. */
    private int markClean() {
        if (!dirtyOnDisk) return 0;
        int ret = l2Cache.flush();
        if (ret >= 0) ret = refblockCache.flush();
        if (ret < 0) return ret;
        ret = writeBE64Sync(OFF_INCOMPATIBLE_FEATURES, header.incompatibleFeatures & ~QCOW2_INCOMPAT_DIRTY);
        if (ret < 0) return ret;
        header.incompatibleFeatures &= ~QCOW2_INCOMPAT_DIRTY;
        dirtyOnDisk = false;
        return 0;
    }

    // ------------------------------------------------------------------ read path

    @Override
    public int coPreadv(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        while (bytes > 0) {
            if (broken) return -Errno.EIO;
            ClusterType type;
            long host;
            long cur;
            lock.lock();
            int ret;
            try {
                ret = clusters.getHostOffset(offset, bytes, mapScratch);
                type = mapScratch.type;
                host = mapScratch.hostOffset;
                cur = mapScratch.bytes;
            } finally {
                lock.unlock();
            }
            if (ret < 0) return ret;
            switch (type) {
                case UNALLOCATED -> ret = readBacking(offset, cur, qiov, qiovOffset);
                case ZERO_PLAIN, ZERO_ALLOC -> qiov.memset(qiovOffset, (byte) 0, cur);
                case COMPRESSED -> ret = readCompressed(host, offset, cur, qiov, qiovOffset);
                case NORMAL -> {
                    file.event(BlkDebugEvent.READ_AIO);
                    ret = file.preadv(host, cur, qiov, qiovOffset, 0);
                }
            }
            if (ret < 0) return ret;
            offset += cur;
            bytes -= cur;
            qiovOffset += cur;
        }
        return 0;
    }

    private int readBacking(long offset, long bytes, IoVector qiov, long qiovOffset) {
        if (backing == null) {
            qiov.memset(qiovOffset, (byte) 0, bytes);
            return 0;
        }
        long bl = backing.getLength();
        if (bl < 0) return (int) bl;
        long n = Math.max(0, Math.min(bytes, bl - offset));
        if (n > 0) {
            file.event(BlkDebugEvent.READ_BACKING_AIO);
            int ret = backing.preadv(offset, n, qiov, qiovOffset, 0);
            if (ret < 0) return ret;
        }
        if (n < bytes) qiov.memset(qiovOffset + n, (byte) 0, bytes - n);
        return 0;
    }

    /** qcow2_co_preadv_compressed: reads the deflate stream, inflates one cluster, copies the part asked for. */
    private int readCompressed(long l2e, long guest, long bytes, IoVector qiov, long qiovOffset) {
        int cb = header.clusterBits;
        int cs = header.clusterSize();
        long coff = Qcow2Layout.compressedOffset(l2e, cb);
        int csize = Qcow2Layout.compressedSize(l2e, cb);
        long fileLen = file.getLength();
        if (fileLen < 0) return (int) fileLen;
        if (coff >= fileLen || coff < cs) {
            warn("Compressed cluster descriptor at 0x" + Long.toHexString(coff) + " lies outside the image file");
            return -Errno.EIO;
        }
        int n = (int) Math.min(csize, fileLen - coff);
        byte[] in = new byte[csize];
        byte[] out = new byte[cs];
        try (NativeBuffer b = NativeBuffer.allocate(Math.max(n, 1), 4096)) {
            file.event(BlkDebugEvent.READ_COMPRESSED);
            int ret = file.preadv(coff, n, IoVector.of(b.address(), n), 0, 0);
            if (ret < 0) return ret;
            b.copyTo(0, in, 0, n);
        }
        Inflater inf = new Inflater(true);
        try {
            inf.setInput(in, 0, csize);
            int got = 0;
            while (got < cs) {
                int r = inf.inflate(out, got, cs - got);
                if (r == 0 && (inf.finished() || inf.needsInput() || inf.needsDictionary())) break;
                got += r;
            }
            if (got != cs) {
                warn("Compressed cluster at 0x" + Long.toHexString(coff) + " inflates to " + got + " bytes, not " + cs);
                return -Errno.EIO;
            }
        } catch (DataFormatException e) {
            warn("Compressed cluster at 0x" + Long.toHexString(coff) + " is not valid deflate data: " + e.getMessage());
            return -Errno.EIO;
        } finally {
            inf.end();
        }
        qiov.copyFromArray(qiovOffset, out, (int) (guest & (cs - 1)), (int) bytes);
        return 0;
    }

    // ------------------------------------------------------------------ write path

    @Override
    public int coPwritev(long offset, long bytes, IoVector qiov, long qiovOffset, int flags) {
        if (broken) return -Errno.EIO;
        Qcow2ClusterMap.Alloc a = allocScratch;
        int ret = 0;
        if (cleanSinceFlush) cleanSinceFlush = false;
        lock.lock();
        try {
            while (bytes > 0) {
                ret = clusters.allocHostOffset(offset, bytes, a);
                // the scratch is shared: take this request's metas (a copy only when there are any)
                List<Qcow2L2Meta> metas = a.metas.isEmpty() ? List.of() : new ArrayList<>(a.metas);
                a.metas.clear();
                if (ret < 0) {
                    finishMetas(metas, ret);
                    break;
                }
                long cur = a.bytes;
                long host = a.hostOffset;
                ret = overlap.checkDataWrite(host, cur);
                for (int i = 0; ret >= 0 && i < metas.size(); i++) {
                    Qcow2L2Meta m = metas.get(i);
                    ret = overlap.checkDataWrite(m.allocOffset, (long) m.nbClusters << header.clusterBits);
                }
                if (ret < 0) {
                    finishMetas(metas, ret);
                    break;
                }
                dataWritesInFlight++;
                lock.unlock();
                try {
                    ret = writeTask(offset, cur, qiov, qiovOffset, host, metas);
                } finally {
                    lock.lock();
                    if (--dataWritesInFlight == 0) dataWritesDone.wakeAll();
                }
                ret = finishMetas(metas, ret);
                if (ret < 0) break;
                offset += cur;
                bytes -= cur;
                qiovOffset += cur;
            }
        } finally {
            lock.unlock();
        }
        return ret;
    }

    /**
     * handle_l2meta's second half: links every meta (or aborts all after an error), removes them
     * from the in-flight list and wakes their dependents. Lock held.
     */
    private int finishMetas(List<Qcow2L2Meta> metas, int ret) {
        for (int i = 0; i < metas.size(); i++) {
            Qcow2L2Meta m = metas.get(i);
            if (ret >= 0 && !broken) {
                ret = clusters.linkL2(m);
                if (ret < 0) clusters.allocAbort(m);
            } else {
                clusters.allocAbort(m);
            }
            clusterAllocs.remove(m);
            m.dependentRequests.wakeAll();
        }
        return broken && ret >= 0 ? -Errno.EIO : ret;
    }

    /** qcow2_co_pwritev_task: handle_alloc_space, merge_cow, data write, perform_cow. Lock not held. */
    private int writeTask(long guest, long bytes, IoVector qiov, long qiovOffset, long host, List<Qcow2L2Meta> metas) {
        int ret;
        boolean merged = false;
        for (int i = 0; i < metas.size(); i++) {
            Qcow2L2Meta m = metas.get(i);
            if (!m.hasCow()) continue;
            // handle_alloc_space: zero the whole new area instead of a COW when the source reads as zeros
            if (m.cowIsZero && (file.driver().supportedZeroFlags() & RequestFlags.NO_FALLBACK) != 0) {
                file.event(BlkDebugEvent.CLUSTER_ALLOC_SPACE);
                ret = file.pwriteZeroes(m.allocOffset, (long) m.nbClusters << header.clusterBits, RequestFlags.NO_FALLBACK);
                if (ret >= 0) {
                    m.skipCow = true;
                    continue;
                }
            }
            // merge_cow: the data lies exactly between the two COW regions
            if (m.cowStart() + m.cowStartBytes == guest && m.offset + m.cowEndOffset == guest + bytes) {
                m.dataMerged = true;
                merged = true;
            }
        }
        if (!merged) {
            file.event(BlkDebugEvent.WRITE_AIO);
            ret = file.pwritev(host, bytes, qiov, qiovOffset, 0);
            if (ret < 0) return ret;
        }
        for (int i = 0; i < metas.size(); i++) {
            ret = performCow(metas.get(i), qiov, qiovOffset, bytes);
            if (ret < 0) return ret;
        }
        return 0;
    }

    /**
     * perform_cow: reads the head and tail regions (one read when both exist and the gap is at
     * most 16 KiB; no read when the source reads as zeros) and writes head + data + tail with one
     * vectored write when the data was merged.
     */
    private int performCow(Qcow2L2Meta m, IoVector qiov, long qiovOffset, long dataBytes) {
        if (m.skipCow || !m.hasCow()) return 0;
        long head = m.cowStartBytes;
        long tailOff = m.cowEndOffset;
        long tail = m.cowEndBytes;
        boolean oneRead = head > 0 && tail > 0 && tailOff - head <= COW_READ_MERGE_GAP;
        long bufLen = oneRead ? tailOff + tail : head + tail;
        long tailInBuf = oneRead ? tailOff : head;
        try (NativeBuffer buf = NativeBuffer.allocate(bufLen, 4096)) {
            if (m.cowIsZero) {
                buf.fill(0, bufLen, (byte) 0);
            } else {
                file.event(BlkDebugEvent.COW_READ);
                int ret;
                if (oneRead) {
                    ret = coPreadv(m.offset, bufLen, buf.asIoVector(0, bufLen), 0, 0);
                } else {
                    ret = 0;
                    if (head > 0) ret = coPreadv(m.offset, head, buf.asIoVector(0, head), 0, 0);
                    if (ret >= 0 && tail > 0) ret = coPreadv(m.offset + tailOff, tail, buf.asIoVector(tailInBuf, tail), 0, 0);
                }
                if (ret < 0) return ret;
            }
            file.event(BlkDebugEvent.COW_WRITE);
            if (m.dataMerged) {
                IoVector v = new IoVector(qiov.count() + 2);
                if (head > 0) v.add(buf.address(), head);
                v.concat(qiov, qiovOffset, dataBytes);
                if (tail > 0) v.add(buf.address() + tailInBuf, tail);
                return file.pwritev(m.allocOffset, v.size(), v, 0, 0);
            }
            int ret = 0;
            if (head > 0) ret = file.pwritev(m.allocOffset, head, buf.asIoVector(0, head), 0, 0);
            if (ret >= 0 && tail > 0) ret = file.pwritev(m.allocOffset + tailOff, tail, buf.asIoVector(tailInBuf, tail), 0, 0);
            return ret;
        }
    }

    // ------------------------------------------------------------------ zero writes and discard

    @Override
    public int coPwriteZeroes(long offset, long bytes, int flags) {
        if (broken) return -Errno.EIO;
        int cs = header.clusterSize();
        long end = offset + bytes;
        long alignedStart = Math.ceilDiv(offset, cs) * (long) cs;
        long alignedEnd = end == header.size ? Math.ceilDiv(end, cs) * (long) cs : end & ~(long) (cs - 1);
        if (alignedStart >= alignedEnd) {
            return writeZeroBuffer(offset, bytes);
        }
        int ret = 0;
        if (alignedStart > offset) ret = writeZeroBuffer(offset, alignedStart - offset);
        if (ret < 0) return ret;
        long zEnd = Math.min(alignedEnd, header.size);
        cleanSinceFlush = false;
        lock.lock();
        try {
            waitForDataWrites();
            refcount.collectDiscards = node.discardUnmap() && (flags & RequestFlags.MAY_UNMAP) != 0;
            ret = clusters.zeroize(alignedStart, zEnd - alignedStart, flags);
            refcount.collectDiscards = false;
            if (ret >= 0) ret = processDiscards();
        } finally {
            refcount.pendingDiscards.clear();
            lock.unlock();
        }
        if (ret == -Errno.ENOTSUP) ret = writeZeroBuffer(alignedStart, zEnd - alignedStart);
        if (ret < 0) return ret;
        if (alignedEnd < end) ret = writeZeroBuffer(alignedEnd, end - alignedEnd);
        return ret;
    }

    /** The block layer's zero-write fallback for unaligned edges: a write of a zero buffer. */
    private int writeZeroBuffer(long offset, long bytes) {
        int ret = 0;
        long chunk = Math.min(bytes, 1L << 20);
        try (NativeBuffer z = NativeBuffer.allocate(Math.max(chunk, 1), 4096)) {
            z.fill(0, Math.max(chunk, 1), (byte) 0);
            while (bytes > 0 && ret >= 0) {
                long n = Math.min(bytes, chunk);
                ret = coPwritev(offset, n, z.asIoVector(0, n), 0, 0);
                offset += n;
                bytes -= n;
            }
        }
        return ret;
    }

    @Override
    public int coPdiscard(long offset, long bytes) {
        if (broken) return -Errno.EIO;
        int cs = header.clusterSize();
        if ((offset & (cs - 1)) != 0 || (((offset + bytes) & (cs - 1)) != 0 && offset + bytes != header.size)) {
            return -Errno.ENOTSUP;
        }
        if (header.version < 3 && backing != null) return -Errno.ENOTSUP;
        cleanSinceFlush = false;
        lock.lock();
        try {
            waitForDataWrites();
            refcount.collectDiscards = node.discardUnmap();
            int ret = clusters.discard(offset, Math.min(bytes, header.size - offset), false);
            refcount.collectDiscards = false;
            if (ret >= 0) ret = processDiscards();
            return ret;
        } finally {
            refcount.pendingDiscards.clear();
            lock.unlock();
        }
    }

    /**
     * Zero writes and discards change or free clusters that a mapped write may still be writing
     * to (its host offset was looked up before the lock was dropped): they first wait, lock held
     * on return, until no guest data write is between mapping and completion. Later writes map
     * after the L2 change, so none can reach a freed cluster.
     */
    private void waitForDataWrites() {
        while (dataWritesInFlight > 0) {
            dataWritesDone.await(lock);
        }
    }

    /**
     * qcow2_process_discards: freed host ranges are punched only after the L2 and refcount updates
     * are on disk, and while the lock is still held, so no freed cluster can be reused in between.
     */
    private int processDiscards() {
        if (refcount.pendingDiscards.isEmpty()) return 0;
        int ret = l2Cache.flush();
        if (ret >= 0) ret = refblockCache.flush();
        if (ret < 0) return ret;
        for (long[] r : refcount.pendingDiscards) {
            file.pdiscard(r[0], r[1]);
        }
        refcount.pendingDiscards.clear();
        return 0;
    }

    // ------------------------------------------------------------------ flush, status, limits, close

    @Override
    public int coFlushToOs() {
        if (broken) return -Errno.EIO;
        lock.lock();
        try {
            file.event(BlkDebugEvent.FLUSH_TO_OS);
            int ret = l2Cache.write();
            if (ret >= 0) ret = refblockCache.write();
            if (ret >= 0) cleanSinceFlush = true;
            return ret;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public long getLength() {
        return header.size;
    }

    /**
     * qcow2_co_truncate, growing only: the L1 table grows to exactly the new size (qcow2_grow_l1_table
     * with exact_size), then the header's size field is rewritten synchronously. The new area reads
     * as zeros (or backing data, as QEMU). Shrinking and preallocated growth are refused.
     */
    @Override
    public int coTruncate(long offset, boolean exact, io.vblk.block.PreallocMode prealloc, int flags) {
        if (broken) return -Errno.EIO;
        if (prealloc != io.vblk.block.PreallocMode.OFF) return -Errno.ENOTSUP;
        if ((offset & 511) != 0) return -Errno.EINVAL;
        lock.lock();
        try {
            if (header.nbSnapshots != 0) return -Errno.ENOTSUP; // "Can't resize an image which has snapshots"
            if (offset < header.size) return -Errno.ENOTSUP;
            if (offset == header.size) return 0;
            cleanSinceFlush = false;
            int ret = clusters.growL1(Qcow2Header.l1SizeFor(offset, header.clusterBits), true);
            if (ret < 0) return ret;
            ret = writeBE64Sync(24, offset);
            if (ret < 0) return ret;
            header.size = offset;
            return 0;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public int coBlockStatus(boolean wantZero, long offset, long bytes, BlockStatus out) {
        Qcow2ClusterMap.Mapping m = new Qcow2ClusterMap.Mapping();
        lock.lock();
        int ret;
        try {
            ret = clusters.getHostOffset(offset, bytes, mapScratch);
            m.type = mapScratch.type;
            m.hostOffset = mapScratch.hostOffset;
            m.bytes = mapScratch.bytes;
        } finally {
            lock.unlock();
        }
        if (ret < 0) return ret;
        switch (m.type) {
            case NORMAL -> out.set(BlockStatus.DATA | BlockStatus.OFFSET_VALID | BlockStatus.ALLOCATED | BlockStatus.RECURSE, m.bytes, m.hostOffset, file);
            // a preallocated zero cluster has a host cluster: report it like qcow2_co_block_status
            case ZERO_ALLOC -> out.set(BlockStatus.ZERO | BlockStatus.ALLOCATED | BlockStatus.OFFSET_VALID, m.bytes, m.hostOffset, file);
            case ZERO_PLAIN -> out.set(BlockStatus.ZERO | BlockStatus.ALLOCATED, m.bytes, 0, null);
            case COMPRESSED -> out.set(BlockStatus.DATA | BlockStatus.COMPRESSED | BlockStatus.ALLOCATED, m.bytes, 0, null);
            default -> out.set(backing == null ? BlockStatus.ZERO : 0, m.bytes, 0, null);
        }
        return 0;
    }

    @Override
    public void refreshLimits(BlockLimits l) {
        l.requestAlignment = 1;
        l.pwriteZeroesAlignment = header.clusterSize();
        l.pdiscardAlignment = header.clusterSize();
    }

    @Override
    public int supportedZeroFlags() {
        return RequestFlags.MAY_UNMAP | RequestFlags.NO_FALLBACK;
    }

    @Override
    public int clusterSize() {
        return header.clusterSize();
    }

    @Override
    public boolean hasZeroInit() {
        return backing == null;
    }

    /** True once a corruption was signalled (tests, tools). */
    public boolean isBroken() {
        return broken;
    }

    /**
     * Sizes of the two metadata caches: entries, entry size and how many entries hold a table
     * piece now. Their buffers are allocated once at open, so {@code entries * entrySize} is the
     * memory they use, bounded by l2-cache-size / refcount-cache-size.
     */
    public record CacheStats(int l2Entries, int l2EntrySize, int l2Used, int refcountEntries, int refcountEntrySize, int refcountUsed) {
        public long l2Capacity() { return (long) l2Entries * l2EntrySize; }
        public long l2UsedBytes() { return (long) l2Used * l2EntrySize; }
        public long refcountCapacity() { return (long) refcountEntries * refcountEntrySize; }
    }

    /** Current cache statistics (tests, tools). */
    public CacheStats cacheStats() {
        lock.lock();
        try {
            return new CacheStats(l2Cache.size, l2Cache.entrySize, l2Cache.used(), refblockCache.size, refblockCache.entrySize, refblockCache.used());
        } finally {
            lock.unlock();
        }
    }

    /** Host offset just past the last cluster with a non-zero refcount (image end as refcounts see it). */
    public long imageEndOffset() {
        lock.lock();
        try {
            return refcount.imageEnd();
        } finally {
            lock.unlock();
        }
    }

    /**
     * qcow2_close / qcow2_inactivate: after the node's final flush, clears the dirty bit of a lazy
     * refcounts image. If metadata changed since the last flush (a crash simulation closing without
     * flushing) nothing is written.
     */
    @Override
    public void close() {
        try {
            if (!readOnly && !broken && cleanSinceFlush && dirtyOnDisk && io.vblk.block.Coroutine.current() != null) {
                lock.lock();
                try {
                    markClean();
                } finally {
                    lock.unlock();
                }
            }
        } finally {
            closeBuffers();
        }
    }

    private void closeBuffers() {
        if (l2Cache != null) l2Cache.close();
        if (refblockCache != null) refblockCache.close();
    }
}

package io.vblk.virtio.demo;

import io.vblk.block.NativeMemory;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.driver.GuestQueue;
import io.vblk.virtio.driver.Layout;

import java.util.Arrays;
import java.util.SplittableRandom;

import static io.vblk.virtio.VirtioSpec.*;

/**
 * A mixed, self-verifying workload played by the {@link GuestDriver}: random reads, writes and
 * flushes of 4 KiB .. 64 KiB at a queue depth, every write's data derived from (block, stamp) so
 * every read can be checked byte for byte, then a full read-back of the disk. Used by
 * {@code vblk demo} and benchmarks. Runs on the caller's thread (the "vCPU"); the device works on
 * its I/O thread.
 */
public final class VirtioWorkload {
    public static final int BLOCK = 4096;
    public static final int CHUNK_BLOCKS = 16; // one request stays inside a 64 KiB chunk; one in flight per chunk

    /** Called about once a second while the workload runs. */
    public interface Progress {
        void report(double seconds, long ops, long mismatches);
    }

    public static final class Result {
        public long ops, reads, writes, flushes, errors, mismatches, bytesRead, bytesWritten;
        public double seconds;
        long[] lat;
        int nlat;

        public double iops() { return ops / Math.max(seconds, 1e-9); }

        /** Latency percentile in microseconds (q in 0..1). */
        public double latencyUs(double q) {
            if (nlat == 0) return 0;
            long[] s = Arrays.copyOf(lat, nlat);
            Arrays.sort(s);
            return s[(int) Math.min(nlat - 1, Math.floor(q * nlat))] / 1000.0;
        }
    }

    private final GuestQueue q;
    private final long diskBlocks;
    private final int depth;
    private final int[] stamps;       // per 4k block: 0 = never written (zeros)
    private final boolean[] busy;     // per chunk
    private final long[] slotGpa;
    private final long[] slotHost;
    private final int[] slotType, slotBlock, slotCount, slotStamp;
    private final long[] slotStart;
    private final int[] slotOfHead;
    private final int[] freeSlots;
    private int nfree;
    private int stampSeq;
    private final SplittableRandom rnd;

    public VirtioWorkload(GuestDriver drv, GuestQueue q, long diskBytes, int depth, long seed) {
        this.q = q;
        this.diskBlocks = diskBytes / BLOCK;
        if (diskBlocks < CHUNK_BLOCKS) throw new IllegalArgumentException("disk too small for the workload");
        this.depth = Math.min(depth, q.size());
        this.stamps = new int[(int) diskBlocks];
        this.busy = new boolean[(int) (diskBlocks / CHUNK_BLOCKS)];
        slotGpa = new long[this.depth];
        slotHost = new long[this.depth];
        slotType = new int[this.depth];
        slotBlock = new int[this.depth];
        slotCount = new int[this.depth];
        slotStamp = new int[this.depth];
        slotStart = new long[this.depth];
        slotOfHead = new int[q.size()];
        freeSlots = new int[this.depth];
        for (int i = 0; i < this.depth; i++) {
            slotGpa[i] = drv.alloc((long) CHUNK_BLOCKS * BLOCK, BLOCK);
            slotHost[i] = drv.host(slotGpa[i], (long) CHUNK_BLOCKS * BLOCK);
            freeSlots[nfree++] = i;
        }
        rnd = new SplittableRandom(seed);
    }

    private static long word(int block, int stamp, int k) {
        long x = block * 0x9E3779B97F4A7C15L ^ stamp * 0xC2B2AE3D27D4EB4FL ^ k;
        x ^= x >>> 31;
        x *= 0xBF58476D1CE4E5B9L;
        return x ^ (x >>> 29);
    }

    private void fill(long host, int block, int stamp) {
        for (int k = 0; k < BLOCK / 8; k++) NativeMemory.putLongLE(host + 8L * k, word(block, stamp, k));
    }

    /** Bytes of {@code block} at {@code host} that differ from what the disk must hold. */
    private long check(long host, int block) {
        int s = stamps[block];
        long bad = 0;
        for (int k = 0; k < BLOCK / 8; k++) {
            long want = s == 0 ? 0 : word(block, s, k);
            long got = NativeMemory.getLongLE(host + 8L * k);
            long x = got ^ want;
            if (x != 0) {
                for (int b = 0; b < 8; b++) if (((x >>> (8 * b)) & 0xff) != 0) bad++;
            }
        }
        return bad;
    }

    /** Runs the mixed workload for {@code nanos}; {@code readPercent} of requests read, 2% flush. */
    public Result run(long nanos, int readPercent, Progress progress) {
        Result res = new Result();
        res.lat = new long[1 << 22];
        long t0 = System.nanoTime(), nextReport = t0 + 1_000_000_000L;
        boolean stopping = false;
        int inFlight = 0;
        while (!stopping || inFlight > 0) {
            long now = System.nanoTime();
            if (!stopping && now - t0 >= nanos) stopping = true;
            boolean added = false;
            while (!stopping && nfree > 0) {
                if (!submitOne(readPercent)) break;
                inFlight++;
                added = true;
            }
            if (added) q.kick();
            int reaped = reap(res);
            inFlight -= reaped;
            if (reaped == 0 && inFlight > 0) q.awaitInterrupt(1);
            if (progress != null && now >= nextReport) {
                progress.report((now - t0) / 1e9, res.ops, res.mismatches);
                nextReport += 1_000_000_000L;
            }
        }
        res.seconds = (System.nanoTime() - t0) / 1e9;
        return res;
    }

    private boolean submitOne(int readPercent) {
        int slot = freeSlots[nfree - 1];
        int kind = rnd.nextInt(100);
        int type, block = 0, count = 0;
        if (kind < 2) {
            type = VIRTIO_BLK_T_FLUSH;
        } else {
            type = kind < 2 + readPercent ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
            int chunk = -1;
            for (int tries = 0; tries < 8; tries++) {
                int c = rnd.nextInt(busy.length);
                if (!busy[c]) { chunk = c; break; }
            }
            if (chunk < 0) return false;
            busy[chunk] = true;
            int off = rnd.nextInt(CHUNK_BLOCKS);
            count = 1 + rnd.nextInt(CHUNK_BLOCKS - off);
            block = chunk * CHUNK_BLOCKS + off;
            if (type == VIRTIO_BLK_T_OUT) {
                int s = ++stampSeq;
                if (s == 0) s = ++stampSeq;
                slotStamp[slot] = s;
                for (int i = 0; i < count; i++) fill(slotHost[slot] + (long) i * BLOCK, block + i, s);
            }
        }
        Layout layout = (block & 7) == 3 ? Layout.INDIRECT : Layout.DIRECT;
        int head = q.submit(type, (long) block * (BLOCK / 512), slotGpa[slot], count * BLOCK, layout);
        if (head < 0) {
            if (type != VIRTIO_BLK_T_FLUSH) busy[block / CHUNK_BLOCKS] = false;
            return false;
        }
        nfree--;
        slotOfHead[head] = slot;
        slotType[slot] = type;
        slotBlock[slot] = block;
        slotCount[slot] = count;
        slotStart[slot] = System.nanoTime();
        return true;
    }

    private int reap(Result res) {
        int n = 0;
        while (q.pollUsed()) {
            n++;
            int head = q.lastHead();
            int slot = slotOfHead[head];
            long lat = System.nanoTime() - slotStart[slot];
            if (res.nlat < res.lat.length) res.lat[res.nlat++] = lat;
            res.ops++;
            int st = q.status(head);
            int type = slotType[slot];
            if (st != VIRTIO_BLK_S_OK) res.errors++;
            if (type == VIRTIO_BLK_T_FLUSH) {
                res.flushes++;
            } else {
                int block = slotBlock[slot], count = slotCount[slot];
                if (type == VIRTIO_BLK_T_OUT) {
                    res.writes++;
                    res.bytesWritten += (long) count * BLOCK;
                    if (st == VIRTIO_BLK_S_OK) for (int i = 0; i < count; i++) stamps[block + i] = slotStamp[slot];
                } else {
                    res.reads++;
                    res.bytesRead += (long) count * BLOCK;
                    if (st == VIRTIO_BLK_S_OK) {
                        for (int i = 0; i < count; i++) res.mismatches += check(slotHost[slot] + (long) i * BLOCK, block + i);
                    }
                }
                busy[block / CHUNK_BLOCKS] = false;
            }
            freeSlots[nfree++] = slot;
        }
        return n;
    }

    /** Reads the whole disk back through the device and counts bytes that differ from what was written. */
    public Result verifyAll() {
        Result res = new Result();
        res.lat = new long[0];
        long t0 = System.nanoTime();
        int nextChunk = 0, inFlight = 0;
        while (nextChunk < busy.length || inFlight > 0) {
            boolean added = false;
            while (nextChunk < busy.length && nfree > 0) {
                int slot = freeSlots[nfree - 1];
                int block = nextChunk * CHUNK_BLOCKS;
                int head = q.submit(VIRTIO_BLK_T_IN, (long) block * (BLOCK / 512), slotGpa[slot], CHUNK_BLOCKS * BLOCK, Layout.DIRECT);
                if (head < 0) break;
                nfree--;
                slotOfHead[head] = slot;
                slotType[slot] = VIRTIO_BLK_T_IN;
                slotBlock[slot] = block;
                slotCount[slot] = CHUNK_BLOCKS;
                slotStart[slot] = System.nanoTime();
                busy[nextChunk++] = true;
                inFlight++;
                added = true;
            }
            if (added) q.kick();
            int reaped = reap(res);
            inFlight -= reaped;
            if (reaped == 0 && inFlight > 0) q.awaitInterrupt(1);
        }
        res.seconds = (System.nanoTime() - t0) / 1e9;
        return res;
    }
}

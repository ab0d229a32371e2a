package io.vblk.virtio.blk;

import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.NativeBuffer;
import io.vblk.block.NativeMemory;
import io.vblk.virtio.driver.GuestDriver;
import io.vblk.virtio.driver.GuestQueue;
import io.vblk.virtio.driver.Layout;
import io.vblk.virtio.memory.GuestMemory;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static io.vblk.virtio.VirtioSpec.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Mutates rings and descriptor chains at random (addresses, lengths, flags, loops, nested indirect
 * tables, avail.idx running ahead, out-of-range heads, random headers) and checks after every case:
 * nothing escaped the device (no SEVERE log, no "internal error"), nothing outside guest memory was
 * touched (canaries around both regions), nothing hung, every popped chain was answered unless the
 * device set NEEDS_RESET, and a good chain is served after reset. {@code -Dvblk.fuzz.cases=1000000}
 * for the long run; CI runs 20000. {@code -Dvblk.fuzz.seed} replays a run.
 */
class FuzzTest {
    static final int QSIZE = 16;
    static final long REGION = 4L << 20, REGION2_GPA = 8L << 20, REGION2 = 1L << 20, CANARY = 1L << 16;

    @Test
    void randomRingsAndChains() throws Exception {
        int cases = Integer.getInteger("vblk.fuzz.cases", 20_000);
        long seed = Long.getLong("vblk.fuzz.seed", System.nanoTime());
        Logger log = Logger.getLogger("io.vblk.virtio");
        Level oldLevel = log.getLevel();
        AtomicInteger severe = new AtomicInteger();
        Handler counter = new Handler() {
            @Override public void publish(LogRecord r) { if (r.getLevel().intValue() >= Level.SEVERE.intValue()) severe.incrementAndGet(); }
            @Override public void flush() {}
            @Override public void close() {}
        };
        log.setLevel(Level.SEVERE);
        log.addHandler(counter);
        try (NativeBuffer raw1 = NativeBuffer.allocate(REGION + 2 * CANARY, 4096);
             NativeBuffer raw2 = NativeBuffer.allocate(REGION2 + 2 * CANARY, 4096)) {
            raw1.fill(0, raw1.size(), (byte) 0xc5);
            raw2.fill(0, raw2.size(), (byte) 0xc5);
            GuestMemory mem = new GuestMemory();
            mem.addSegment(0, raw1.segment().asSlice(CANARY, REGION));
            mem.addSegment(REGION2_GPA, raw2.segment().asSlice(CANARY, REGION2));
            AioContext ctx = AioContext.start("fuzz");
            BlockNode node = BlockNode.open(BlockOptions.parse("driver=memory,size=1M"));
            try {
                Fuzzer[] fs = {
                        new Fuzzer(mem, ctx, node, MalformedChainPolicy.NEEDS_RESET, seed),
                        new Fuzzer(mem, ctx, node, MalformedChainPolicy.DROP, seed + 1)};
                for (int i = 0; i < cases; i++) {
                    Fuzzer f = fs[i & 1];
                    f.runCase(i);
                    if ((i & 1023) == 0) {
                        checkCanaries(raw1, REGION, seed);
                        checkCanaries(raw2, REGION2, seed);
                    }
                }
                checkCanaries(raw1, REGION, seed);
                checkCanaries(raw2, REGION2, seed);
                assertEquals(0, severe.get(), "SEVERE logs (exceptions inside the device), seed " + seed);
                long resets = fs[0].resets + fs[1].resets;
                assertTrue(fs[0].needsReset > 0 && fs[1].dropped > 0 && fs[0].statuses + fs[1].statuses > 0,
                        "the fuzzer reached every outcome: " + fs[0] + " " + fs[1]);
                System.out.println("fuzz: " + cases + " cases, seed " + seed + ", resets " + resets + ", " + fs[0] + ", " + fs[1]);
            } finally {
                ctx.run(node::close);
                ctx.close();
                mem.close();
            }
        } finally {
            log.removeHandler(counter);
            log.setLevel(oldLevel);
        }
    }

    private static void checkCanaries(NativeBuffer raw, long region, long seed) {
        long a = raw.address();
        for (long off : new long[] {0, CANARY + region}) {
            for (long i = 0; i < CANARY; i += 8) {
                assertEquals(0xc5c5c5c5c5c5c5c5L, NativeMemory.getLongLE(a + off + i), "memory outside guest regions changed at " + (off + i) + ", seed " + seed);
            }
        }
    }

    static final class Fuzzer {
        final GuestMemory mem;
        final AioContext ctx;
        final VirtioBlkDevice dev;
        final GuestDriver drv;
        final SplittableRandom rnd;
        final long data;
        GuestQueue q;
        long statuses, dropped, needsReset, empty, resets;

        Fuzzer(GuestMemory mem, AioContext ctx, BlockNode node, MalformedChainPolicy policy, long seed) {
            this.mem = mem;
            this.ctx = ctx;
            VirtioBlkConfig c = new VirtioBlkConfig().malformedChains(policy);
            c.queueSize = QSIZE;
            c.maxDiscardSeg = 4;
            this.dev = new VirtioBlkDevice(node, c, new AioContext[] {ctx});
            long base = policy == MalformedChainPolicy.DROP ? 0 : REGION / 2;
            this.drv = new GuestDriver(dev, mem, base, REGION / 2);
            this.rnd = new SplittableRandom(seed);
            drv.initialize(QSIZE);
            q = drv.queue(0);
            data = drv.alloc(64 << 10, 4096);
        }

        long randomAddr() {
            return switch (rnd.nextInt(6)) {
                case 0 -> rnd.nextLong();
                case 1 -> REGION - rnd.nextInt(64);                 // straddles the end of region 1
                case 2 -> REGION2_GPA - rnd.nextInt(64);            // in the hole before region 2
                case 3 -> REGION2_GPA + REGION2 - rnd.nextInt(64);  // end of region 2
                case 4 -> -rnd.nextInt(4096) - 1L;                  // wraps
                default -> rnd.nextLong(REGION);                    // inside: may hit the rings themselves
            };
        }

        int randomLen() {
            return switch (rnd.nextInt(5)) {
                case 0 -> rnd.nextInt();
                case 1 -> 0;
                case 2 -> -1;
                case 3 -> rnd.nextInt(17);
                default -> rnd.nextInt(1 << 16);
            };
        }

        void mutateDesc(long table, int entries) {
            long d = table + 16L * rnd.nextInt(entries);
            switch (rnd.nextInt(4)) {
                case 0 -> NativeMemory.putLongLE(d, randomAddr());
                case 1 -> NativeMemory.putIntLE(d + 8, randomLen());
                case 2 -> NativeMemory.putShortLE(d + 12, (short) (rnd.nextBoolean() ? rnd.nextInt(8) : rnd.nextInt()));
                default -> NativeMemory.putShortLE(d + 14, (short) (rnd.nextBoolean() ? rnd.nextInt(QSIZE + 4) : rnd.nextInt()));
            }
        }

        void runCase(int n) {
            int[] types = {VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
                    VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, rnd.nextInt()};
            int type = types[rnd.nextInt(types.length)];
            Layout layout = Layout.values()[rnd.nextInt(4)];
            int len = (type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES) ? 16 * (1 + rnd.nextInt(5)) : 512 * rnd.nextInt(9);
            long sector = rnd.nextInt(4) == 0 ? rnd.nextLong() : rnd.nextInt(2100);
            int chains = 1 + rnd.nextInt(3);
            int head = -1;
            for (int i = 0; i < chains; i++) head = q.submit(type, sector, data, len, layout);
            assertTrue(head >= 0);
            if (type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES) {
                long h = mem.translate(data, len);
                for (int i = 0; i < len; i += 16) {
                    NativeMemory.putLongLE(h + i, rnd.nextInt(3) == 0 ? rnd.nextLong() : rnd.nextInt(2048));
                    NativeMemory.putIntLE(h + i + 8, rnd.nextInt(3) == 0 ? rnd.nextInt() : rnd.nextInt(64));
                    NativeMemory.putIntLE(h + i + 12, rnd.nextInt(4) == 0 ? rnd.nextInt() : rnd.nextInt(2));
                }
            }
            long indirect = mem.translate(q.indirectGpa + 16L * GuestQueue.MAX_SEGMENTS * head, 16L * 8);
            int mutations = rnd.nextInt(4);
            for (int m = 0; m < mutations; m++) {
                switch (rnd.nextInt(8)) {
                    case 0, 1 -> mutateDesc(q.descHost(), QSIZE);
                    case 2 -> mutateDesc(indirect, 4);
                    case 3 -> q.setAvailIdxRaw(q.availIdx() + rnd.nextInt(-3, 40));
                    case 4 -> q.setAvailRingRaw(q.availIdx() - 1 - rnd.nextInt(3), rnd.nextInt(QSIZE + 8));
                    case 5 -> { // loop back to the head
                        long d = q.descHost() + 16L * rnd.nextInt(QSIZE);
                        NativeMemory.putShortLE(d + 12, (short) (NativeMemory.getShortLE(d + 12) | VIRTQ_DESC_F_NEXT));
                        NativeMemory.putShortLE(d + 14, (short) head);
                    }
                    case 6 -> { // nested indirect: an indirect table entry pointing at its own table
                        long d = indirect + 16L * rnd.nextInt(4);
                        NativeMemory.putLongLE(d, q.indirectGpa + 16L * GuestQueue.MAX_SEGMENTS * head);
                        NativeMemory.putIntLE(d + 8, 16 * (1 + rnd.nextInt(4)));
                        NativeMemory.putShortLE(d + 12, (short) VIRTQ_DESC_F_INDIRECT);
                    }
                    default -> { // random header bytes
                        long h = mem.translate(q.hdrGpa + 16L * head, 16);
                        NativeMemory.putIntLE(h + rnd.nextInt(4) * 4, rnd.nextInt());
                    }
                }
            }
            int before = dev.queue(0).lastAvailIdx();
            q.forceKick();
            // the kick's processing task ran before this one; the memory node completes inline
            long t0 = System.nanoTime();
            ctx.runOnThread(() -> {});
            ctx.runOnThread(() -> {});
            assertTrue(System.nanoTime() - t0 < 10_000_000_000L, "hang in case " + n);
            String why = dev.needsResetReason();
            if (why != null) {
                assertFalse(why.startsWith("internal error"), why);
                needsReset++;
            } else {
                int popped = (dev.queue(0).lastAvailIdx() - before) & 0xffff;
                if (popped == 0) empty++;
                // every popped chain was answered: a status or a dropped chain
                assertEquals(dev.queue(0).lastAvailIdx(), q.usedIdx(), "unanswered chain in case " + n);
                long used = mem.translate(q.usedGpa, 6 + 8L * QSIZE);
                for (int k = 0; k < popped; k++) {
                    int slot = (q.usedIdx() - 1 - k) & (QSIZE - 1);
                    int len2 = NativeMemory.getIntLE(used + 4 + 8L * slot + 4);
                    if (len2 == 0) dropped++;
                    else statuses++;
                }
            }
            // reset, set up fresh rings, and check a good chain is served
            dev.reset();
            resets++;
            drv.initialize(QSIZE);
            q = drv.queue(0);
            if (why != null || (n & 63) == 0) {
                int h = q.submit(VIRTIO_BLK_T_IN, 0, data, 4096, Layout.DIRECT);
                q.forceKick();
                assertTrue(q.waitUsed(10_000), "good chain after reset, case " + n);
                assertEquals(h, q.lastHead());
                assertEquals(VIRTIO_BLK_S_OK, q.status(h));
                dev.reset();
                drv.initialize(QSIZE);
                q = drv.queue(0);
            }
        }

        @Override
        public String toString() {
            return "[statuses=" + statuses + " dropped=" + dropped + " needsReset=" + needsReset + " empty=" + empty + "]";
        }
    }
}

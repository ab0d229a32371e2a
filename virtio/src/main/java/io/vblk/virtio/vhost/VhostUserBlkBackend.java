package io.vblk.virtio.vhost;

import static io.vblk.virtio.VirtioSpec.*;

import io.vblk.aio.Native;
import io.vblk.block.AioContext;
import io.vblk.block.NativeBuffer;
import io.vblk.virtio.blk.VirtioBlkDevice;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.GuestRegion;
import io.vblk.virtio.queue.VirtQueue;
import java.util.function.Consumer;

/**
 * Plays the virtio transport for a {@link VirtioBlkDevice} on behalf of a vhost-user front-end:
 * turns the mapped memory table into the device's {@link GuestMemory}, front-end virtual ring
 * addresses into guest-physical ones, watches each kick eventfd on the queue's own I/O thread
 * (its epoll poller) and wires the device's used-buffer notifications to the call eventfd.
 * When the front-end set up INFLIGHT_SHMFD it hands each queue its {@link InflightRegion.Queue}
 * as the {@link io.vblk.virtio.queue.InflightTracker}, so requests a killed predecessor left in
 * flight are resubmitted at start. QEMU's block/export/vhost-user-blk-server.c (vu_blk_process_vq,
 * vu_blk_queue_set_started).
 */
public final class VhostUserBlkBackend implements VhostUserBackend {
    private final VirtioBlkDevice dev;
    private final Consumer<String> log;
    private final int[] watchedKick;          // per queue; connection thread only
    private final NativeBuffer[] kickBuf;     // per queue 8-byte read buffer, used on the queue thread

    public VhostUserBlkBackend(VirtioBlkDevice dev, Consumer<String> log) {
        this.dev = dev;
        this.log = log;
        this.watchedKick = new int[dev.numQueues()];
        this.kickBuf = new NativeBuffer[dev.numQueues()];
        for (int i = 0; i < watchedKick.length; i++) {
            watchedKick[i] = -1;
            kickBuf[i] = NativeBuffer.allocate(8, 8);
        }
    }

    @Override public long deviceFeatures() { return dev.deviceFeatures(); }
    @Override public int numQueues() { return dev.numQueues(); }
    @Override public byte[] readConfig() { return dev.configSpace(); }

    @Override
    public boolean writeConfig(int offset, byte[] data) {
        if (offset != CFG_WRITEBACK || data.length != 1 || (dev.driverFeatures() & bit(VIRTIO_BLK_F_CONFIG_WCE)) == 0) return false;
        dev.writeConfig(offset, data);
        logWriteCache("");
        return true;
    }

    private void logWriteCache(String when) {
        log.accept("vhost-user-blk: write cache " + (dev.writeCacheEnabled() ? "on (write back)" : "off (write through)") + when);
    }

    @Override
    public void setFeatures(long features) {
        dev.setDriverFeatures(features);
        logWriteCache(" after feature negotiation");
        int s = dev.status();
        if ((s & S_FEATURES_OK) == 0) dev.setStatus(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    }

    /** The device's guest memory as of the last queue start; regions added live go into it (copy-on-write, safe under I/O). */
    private volatile GuestMemory memory;

    @Override
    public void memoryRegionAdded(GuestMemoryTable.Region r) {
        GuestMemory m = memory;
        if (m != null) m.add(new GuestRegion(r.guestPhys(), r.size(), r.host(), r.userAddr()));
    }

    @Override
    public String startQueue(VhostUserQueue q) {
        int i = q.index();
        GuestMemory mem = new GuestMemory();
        for (GuestMemoryTable.Region r : q.memory().regions()) mem.add(new GuestRegion(r.guestPhys(), r.size(), r.host(), r.userAddr()));
        if ((dev.status() & S_DRIVER_OK) == 0) dev.setStatus(dev.status() | S_DRIVER_OK);
        dev.setMemory(mem);
        memory = mem;
        VirtQueue vq = dev.queue(i);
        if (q.size() > vq.maxSize()) return "queue size " + q.size() + " above the device's maximum " + vq.maxSize();
        long desc = mem.userToGpa(q.descUva), avail = mem.userToGpa(q.availUva), used = mem.userToGpa(q.usedUva);
        vq.setSize(q.size());
        vq.setAddresses(desc, avail, used);
        vq.setLastAvailIdx(q.lastAvailIdx());
        vq.setInflightTracker(q.inflight());   // null unless the front-end gave an inflight region
        dev.setNotifier(i, q::signalCall);
        String err = dev.startQueue(i);
        if (err != null) {
            vq.setInflightTracker(null);
            return err;
        }
        if (q.inflight() != null) {
            int n = vq.resubmittedAtActivation();
            if (n > 0) {
                log.accept("vhost-user-blk: queue " + i + ": resubmitting " + n + " request(s) left in flight, avail resumes at "
                        + vq.lastAvailIdx() + " (front-end base " + q.lastAvailIdx() + ")");
            } else if (vq.lastAvailIdx() != q.lastAvailIdx()) {
                log.accept("vhost-user-blk: queue " + i + ": nothing in flight, avail resumes at used index " + vq.lastAvailIdx()
                        + " (front-end base " + q.lastAvailIdx() + ")");
            }
        }
        AioContext ctx = dev.queueContext(i);
        int kick = q.kickFd();
        long buf = kickBuf[i].address();
        ctx.runOnThread(() -> ctx.poller().register(kick, () -> {
            Native.LIBC.read(kick, buf, 8);
            dev.kick(i);
        }));
        watchedKick[i] = kick;
        return null;
    }

    @Override
    public int stopQueue(VhostUserQueue q) {
        int i = q.index();
        int kick = watchedKick[i];
        if (kick >= 0) {
            AioContext ctx = dev.queueContext(i);
            ctx.runOnThread(() -> ctx.poller().unregister(kick));
            watchedKick[i] = -1;
        }
        log.accept("vhost-user-blk: queue " + i + " stopping: " + dev.describeQueue(i));
        int next = dev.stopQueue(i);
        dev.setNotifier(i, null);
        dev.queue(i).setInflightTracker(null);
        return next;
    }

    @Override
    public void setConfigChangeNotifier(Runnable notifier) {
        dev.setConfigInterrupt(notifier == null ? null : notifier::run);
    }

    @Override
    public void reset() { dev.reset(); }
}

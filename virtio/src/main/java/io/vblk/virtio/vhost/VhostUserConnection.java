package io.vblk.virtio.vhost;

import static io.vblk.virtio.vhost.VhostUser.*;

import io.vblk.aio.Native;
import io.vblk.block.Errno;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * One front-end connection: reads vhost-user messages, validates each one (framing, payload size,
 * fd count, order, ranges) and drives the rings of a {@link VhostUserBackend}. Any violation is a
 * {@link VhostUserProtocolException}: it is logged, every ring is stopped, every fd and mapping is
 * released, and {@link #run()} returns so the server can accept the next connection.
 * libvhost-user's vu_dispatch / vu_process_message, as used by QEMU's vhost-user-blk-server.
 *
 * <p>Ring states: <em>started</em> from SET_VRING_KICK (with an fd) until GET_VRING_BASE;
 * <em>enabled</em> by SET_VRING_ENABLE, or for all rings when SET_FEATURES lacks bit 30. The
 * backend runs a ring only while it is started, enabled, and its addresses translate through the
 * memory table; otherwise it touches no guest memory and signals nothing.
 */
public final class VhostUserConnection implements Runnable {
    private final UnixSocket sock;
    private final VhostUserBackend backend;
    private final Consumer<String> log;
    private final VhostUserQueue[] queues;
    private final long offeredFeatures;

    // all state below: connection thread only
    private boolean owner;
    private long protocolFeatures;
    private long features;
    private GuestMemoryTable memory = GuestMemoryTable.EMPTY;
    private InflightRegion inflight;
    private volatile UnixSocket backendChannel;   // written here, read by the config-change notifier
    private final byte[] header = new byte[HEADER_SIZE];
    private final byte[] payload = new byte[MAX_PAYLOAD];

    public VhostUserConnection(UnixSocket sock, VhostUserBackend backend, Consumer<String> log) {
        this.sock = sock;
        this.backend = backend;
        this.log = log;
        this.queues = new VhostUserQueue[backend.numQueues()];
        for (int i = 0; i < queues.length; i++) queues[i] = new VhostUserQueue(i);
        this.offeredFeatures = backend.deviceFeatures() | (1L << F_PROTOCOL_FEATURES);
    }

    /** Serves messages until EOF, a socket error or a protocol error, then releases everything. */
    @Override
    public void run() {
        backend.setConfigChangeNotifier(this::notifyConfigChange);
        try {
            while (true) {
                List<Integer> fds = new ArrayList<>();
                try {
                    int r = sock.recvFully(header, 0, HEADER_SIZE, fds);
                    if (r == 0) {
                        log.accept("vhost-user: front-end closed the connection");
                        return;
                    }
                    if (r < 0) {
                        log.accept("vhost-user: connection lost: " + Errno.describe(-r));
                        return;
                    }
                    ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
                    int request = h.getInt(0), flags = h.getInt(4), size = h.getInt(8);
                    if ((flags & FLAG_VERSION_MASK) != VERSION || (flags & FLAG_REPLY) != 0) {
                        throw new VhostUserProtocolException("bad header flags 0x" + Integer.toHexString(flags) + " on request " + request);
                    }
                    if (size < 0 || size > MAX_PAYLOAD) {
                        throw new VhostUserProtocolException("payload size " + Integer.toUnsignedString(size) + " too large for request " + request);
                    }
                    if (size > 0) {
                        r = sock.recvFully(payload, 0, size, fds);
                        if (r <= 0) throw new VhostUserProtocolException("connection closed inside a message (request " + request + ")");
                    }
                    ByteBuffer p = ByteBuffer.wrap(payload, 0, size).slice().order(ByteOrder.LITTLE_ENDIAN);
                    int[] fdArr = fds.stream().mapToInt(Integer::intValue).toArray();
                    fds.clear();
                    try {
                        dispatch(request, flags, size, p, fdArr);
                    } finally {
                        for (int f : fdArr) if (f >= 0) Native.LIBC.close(f);
                    }
                } finally {
                    for (int f : fds) Native.LIBC.close(f);
                }
            }
        } catch (VhostUserProtocolException e) {
            log.accept("vhost-user: protocol error: " + e.getMessage() + "; closing the connection");
        } catch (RuntimeException e) {
            log.accept("vhost-user: internal error: " + e + "; closing the connection");
        } finally {
            release();
        }
    }

    private void release() {
        stopAll();
        for (VhostUserQueue q : queues) q.free();
        try {
            backend.reset();
        } catch (RuntimeException e) {
            log.accept("vhost-user: backend reset failed: " + e);
        }
        backend.setConfigChangeNotifier(null);
        UnixSocket bc = backendChannel;
        backendChannel = null;
        if (bc != null) bc.close();
        memory.unmapAll();
        memory = GuestMemoryTable.EMPTY;
        if (inflight != null) inflight.close();
        inflight = null;
        sock.close();
    }

    /** Interrupts {@link #run()} from another thread (server shutdown). */
    public void shutdown() { sock.shutdown(); }

    // ---------------------------------------------------------------- dispatch

    private static final int[] NONE = new int[0];

    private void dispatch(int req, int flags, int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        boolean needReply = (flags & FLAG_NEED_REPLY) != 0 && hasProtocol(PROTOCOL_F_REPLY_ACK);
        boolean ok = true;
        switch (req) {
            case GET_FEATURES -> { expect(req, size, 0, fds, 0); replyU64(req, offeredFeatures); return; }
            case SET_FEATURES -> { expect(req, size, 8, fds, 0); requireOwner(req); setFeatures(p.getLong(0)); }
            case SET_OWNER -> { expect(req, size, 0, fds, 0); owner = true; }
            case RESET_OWNER, RESET_DEVICE -> {
                expect(req, size, 0, fds, 0);
                if (req == RESET_DEVICE) requireProtocol(req, PROTOCOL_F_RESET_DEVICE);
                resetDevice();
            }
            case GET_PROTOCOL_FEATURES -> { expect(req, size, 0, fds, 0); replyU64(req, SUPPORTED_PROTOCOL_FEATURES); return; }
            case SET_PROTOCOL_FEATURES -> {
                expect(req, size, 8, fds, 0);
                long f = p.getLong(0);
                if ((f & ~SUPPORTED_PROTOCOL_FEATURES) != 0) {
                    throw new VhostUserProtocolException("protocol features 0x" + Long.toHexString(f) + " were not offered");
                }
                protocolFeatures = f;
                log.accept("vhost-user: protocol features 0x" + Long.toHexString(f));
            }
            case GET_QUEUE_NUM -> { expect(req, size, 0, fds, 0); replyU64(req, queues.length); return; }
            case GET_MAX_MEM_SLOTS -> {
                expect(req, size, 0, fds, 0);
                requireProtocol(req, PROTOCOL_F_CONFIGURE_MEM_SLOTS);
                replyU64(req, MAX_MEM_SLOTS);
                return;
            }
            case SET_MEM_TABLE -> setMemTable(size, p, fds);
            case ADD_MEM_REG -> addMemReg(size, p, fds);
            case REM_MEM_REG -> remMemReg(size, p, fds);
            case SET_VRING_NUM -> setVringNum(size, p, fds);
            case SET_VRING_ADDR -> setVringAddr(size, p, fds);
            case SET_VRING_BASE -> setVringBase(size, p, fds);
            case GET_VRING_BASE -> { getVringBase(size, p, fds); return; }
            case SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR -> setVringFd(req, size, p, fds);
            case SET_VRING_ENABLE -> setVringEnable(size, p, fds);
            case GET_CONFIG -> { getConfig(size, p, fds); return; }
            case SET_CONFIG -> ok = setConfig(size, p, fds);
            case SET_BACKEND_REQ_FD -> {
                expect(req, size, 0, fds, 1);
                requireProtocol(req, PROTOCOL_F_BACKEND_REQ);
                UnixSocket old = backendChannel;
                backendChannel = UnixSocket.adopt(fds[0]);
                fds[0] = -1;
                if (old != null) old.close();
            }
            case GET_INFLIGHT_FD -> { getInflightFd(size, p, fds); return; }
            case SET_INFLIGHT_FD -> setInflightFd(size, p, fds);
            default -> throw new VhostUserProtocolException("unsupported request " + req + " (size " + size + ")");
        }
        if (needReply) replyU64(req, ok ? 0 : 1);
    }

    private static void expect(int req, int size, int wantSize, int[] fds, int wantFds) throws VhostUserProtocolException {
        if (size != wantSize) {
            throw new VhostUserProtocolException("request " + req + ": payload of " + size + " bytes, expected " + wantSize);
        }
        if (fds.length != wantFds) {
            throw new VhostUserProtocolException("request " + req + ": " + fds.length + " fds, expected " + wantFds);
        }
    }

    private void requireOwner(int req) throws VhostUserProtocolException {
        if (!owner) throw new VhostUserProtocolException("request " + req + " before SET_OWNER");
    }

    private boolean hasProtocol(int bit) { return (protocolFeatures & (1L << bit)) != 0; }

    private void requireProtocol(int req, int bit) throws VhostUserProtocolException {
        if (!hasProtocol(bit)) throw new VhostUserProtocolException("request " + req + " needs protocol feature " + bit + ", not negotiated");
    }

    private VhostUserQueue queue(int req, long index) throws VhostUserProtocolException {
        requireOwner(req);
        if (index < 0 || index >= queues.length) {
            throw new VhostUserProtocolException("request " + req + ": queue index " + index + " out of range (" + queues.length + " queues)");
        }
        return queues[(int) index];
    }

    private static void requireStopped(int req, VhostUserQueue q) throws VhostUserProtocolException {
        if (q.started) throw new VhostUserProtocolException("request " + req + " on started ring " + q.index());
    }

    private boolean anyRunning() {
        for (VhostUserQueue q : queues) if (q.running || q.started) return true;
        return false;
    }

    // ---------------------------------------------------------------- replies

    private void reply(int req, byte[] body, int len, int... fds) throws VhostUserProtocolException {
        byte[] m = new byte[HEADER_SIZE + len];
        ByteBuffer b = ByteBuffer.wrap(m).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(req).putInt(VERSION | FLAG_REPLY).putInt(len);
        System.arraycopy(body, 0, m, HEADER_SIZE, len);
        long r = sock.send(m, 0, m.length, fds);
        if (r < 0) throw new VhostUserProtocolException("reply to request " + req + " failed: " + Errno.describe((int) -r));
    }

    private void replyU64(int req, long v) throws VhostUserProtocolException {
        byte[] b = new byte[8];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(v);
        reply(req, b, 8);
    }

    // ---------------------------------------------------------------- features and reset

    private void setFeatures(long f) throws VhostUserProtocolException {
        if ((f & ~offeredFeatures) != 0) {
            throw new VhostUserProtocolException("features 0x" + Long.toHexString(f) + " include bits that were not offered (0x"
                    + Long.toHexString(offeredFeatures) + ")");
        }
        for (VhostUserQueue q : queues) {
            if (q.running) throw new VhostUserProtocolException("SET_FEATURES while ring " + q.index() + " is running");
        }
        features = f;
        backend.setFeatures(f & ~(1L << F_PROTOCOL_FEATURES));
        log.accept("vhost-user: features 0x" + Long.toHexString(f));
        if ((f & (1L << F_PROTOCOL_FEATURES)) == 0) {
            for (VhostUserQueue q : queues) {
                q.enabled = true;
                maybeStart(q);
            }
        }
    }

    private void resetDevice() {
        stopAll();
        for (VhostUserQueue q : queues) q.reset();
        features = 0;
        backend.reset();
        log.accept("vhost-user: device reset");
    }

    private void stopAll() {
        for (VhostUserQueue q : queues) stopRunning(q);
    }

    // ---------------------------------------------------------------- memory

    private void setMemTable(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        requireOwner(SET_MEM_TABLE);
        if (size < MEM_TABLE_HEADER) throw new VhostUserProtocolException("SET_MEM_TABLE: payload of " + size + " bytes");
        int n = p.getInt(0);
        if (n < 0 || n > MAX_TABLE_REGIONS) throw new VhostUserProtocolException("SET_MEM_TABLE: " + Integer.toUnsignedString(n) + " regions");
        expect(SET_MEM_TABLE, size, MEM_TABLE_HEADER + n * MEM_REGION_SIZE, fds, n);
        if (anyRunning()) throw new VhostUserProtocolException("SET_MEM_TABLE while a ring is started");
        GuestMemoryTable t = GuestMemoryTable.EMPTY;
        try {
            for (int i = 0; i < n; i++) {
                int o = MEM_TABLE_HEADER + i * MEM_REGION_SIZE;
                GuestMemoryTable.Region r = GuestMemoryTable.map(p.getLong(o), p.getLong(o + 8), p.getLong(o + 16), p.getLong(o + 24), fds[i]);
                try {
                    t = t.with(r, MAX_TABLE_REGIONS);
                } catch (VhostUserProtocolException e) {
                    r.unmap();
                    throw e;
                }
            }
        } catch (VhostUserProtocolException e) {
            t.unmapAll();
            throw e;
        }
        memory.unmapAll();
        memory = t;
        for (GuestMemoryTable.Region r : t.regions()) log.accept("vhost-user: memory region " + r);
    }

    private GuestMemoryTable.Region readRegion(ByteBuffer p, int fd) throws VhostUserProtocolException {
        return GuestMemoryTable.map(p.getLong(8), p.getLong(16), p.getLong(24), p.getLong(32), fd);
    }

    private void addMemReg(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        requireOwner(ADD_MEM_REG);
        requireProtocol(ADD_MEM_REG, PROTOCOL_F_CONFIGURE_MEM_SLOTS);
        expect(ADD_MEM_REG, size, MEM_REG_MSG_SIZE, fds, 1);
        GuestMemoryTable.Region r = readRegion(p, fds[0]);
        try {
            memory = memory.with(r, MAX_MEM_SLOTS);
        } catch (VhostUserProtocolException e) {
            r.unmap();
            throw e;
        }
        boolean live = false;
        for (VhostUserQueue q : queues) {
            if (q.running) {
                q.memory = memory;   // additions are safe under a running ring
                live = true;
            }
        }
        if (live) backend.memoryRegionAdded(r);   // the device sees the new RAM at once, not at the next start
        log.accept("vhost-user: memory region " + r + (live ? " (added under running rings)" : ""));
    }

    private void remMemReg(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        requireOwner(REM_MEM_REG);
        requireProtocol(REM_MEM_REG, PROTOCOL_F_CONFIGURE_MEM_SLOTS);
        if (size != MEM_REG_MSG_SIZE || fds.length > 1) {   // the spec tolerates one stray fd here
            throw new VhostUserProtocolException("REM_MEM_REG: " + size + " bytes, " + fds.length + " fds");
        }
        if (anyRunning()) throw new VhostUserProtocolException("REM_MEM_REG while a ring is started");
        int i = memory.find(p.getLong(8), p.getLong(16), p.getLong(24));
        if (i < 0) throw new VhostUserProtocolException("REM_MEM_REG: no such region");
        GuestMemoryTable.Region r = memory.regions().get(i);
        memory = memory.without(i);
        r.unmap();
        log.accept("vhost-user: removed memory region " + r);
    }

    // ---------------------------------------------------------------- rings

    private void setVringNum(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        expect(SET_VRING_NUM, size, VRING_STATE_SIZE, fds, 0);
        VhostUserQueue q = queue(SET_VRING_NUM, Integer.toUnsignedLong(p.getInt(0)));
        requireStopped(SET_VRING_NUM, q);
        int n = p.getInt(4);
        if (n <= 0 || n > MAX_QUEUE_SIZE || Integer.bitCount(n) != 1) {
            throw new VhostUserProtocolException("SET_VRING_NUM: queue size " + Integer.toUnsignedString(n) + " is not a power of two in 1.." + MAX_QUEUE_SIZE);
        }
        q.size = n;
        q.addrSet = false;
    }

    private void setVringAddr(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        expect(SET_VRING_ADDR, size, VRING_ADDR_SIZE, fds, 0);
        VhostUserQueue q = queue(SET_VRING_ADDR, Integer.toUnsignedLong(p.getInt(0)));
        requireStopped(SET_VRING_ADDR, q);
        int flags = p.getInt(4);
        if (flags != 0) throw new VhostUserProtocolException("SET_VRING_ADDR: flags 0x" + Integer.toHexString(flags) + " (logging not offered)");
        if (q.size == 0) throw new VhostUserProtocolException("SET_VRING_ADDR before SET_VRING_NUM on ring " + q.index());
        q.descUva = p.getLong(8);
        q.usedUva = p.getLong(16);
        q.availUva = p.getLong(24);
        translate(q, memory);   // validate now; translated again at start
        q.addrSet = true;
    }

    /** Resolves the ring addresses through {@code table} into q's host addresses, checking alignment and bounds. */
    private static void translate(VhostUserQueue q, GuestMemoryTable table) throws VhostUserProtocolException {
        long n = q.size;
        if ((q.descUva & 15) != 0 || (q.availUva & 1) != 0 || (q.usedUva & 3) != 0) {
            throw new VhostUserProtocolException("ring " + q.index() + ": misaligned ring address");
        }
        long d = table.uvaToHost(q.descUva, 16 * n);
        long a = table.uvaToHost(q.availUva, 6 + 2 * n);
        long u = table.uvaToHost(q.usedUva, 6 + 8 * n);
        if (d == -1 || a == -1 || u == -1) {
            throw new VhostUserProtocolException(String.format("ring %d: address outside the memory table (desc 0x%x avail 0x%x used 0x%x, size %d)",
                    q.index(), q.descUva, q.availUva, q.usedUva, n));
        }
        q.descHost = d;
        q.availHost = a;
        q.usedHost = u;
    }

    private void setVringBase(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        expect(SET_VRING_BASE, size, VRING_STATE_SIZE, fds, 0);
        VhostUserQueue q = queue(SET_VRING_BASE, Integer.toUnsignedLong(p.getInt(0)));
        requireStopped(SET_VRING_BASE, q);
        int base = p.getInt(4);
        if (base < 0 || base > 0xffff) throw new VhostUserProtocolException("SET_VRING_BASE: base " + Integer.toUnsignedString(base));
        q.lastAvailIdx = base;
    }

    private void getVringBase(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        expect(GET_VRING_BASE, size, VRING_STATE_SIZE, fds, 0);
        VhostUserQueue q = queue(GET_VRING_BASE, Integer.toUnsignedLong(p.getInt(0)));
        stopRunning(q);
        q.started = false;
        q.setKickFd(-1);
        byte[] b = new byte[8];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(q.index()).putInt(q.lastAvailIdx);
        reply(GET_VRING_BASE, b, 8);
    }

    private void setVringFd(int req, int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        if (size != U64_SIZE) throw new VhostUserProtocolException("request " + req + ": payload of " + size + " bytes, expected 8");
        long v = p.getLong(0);
        if ((v & ~(VRING_IDX_MASK | VRING_NOFD_MASK)) != 0) throw new VhostUserProtocolException("request " + req + ": bad payload 0x" + Long.toHexString(v));
        boolean noFd = (v & VRING_NOFD_MASK) != 0;
        if (fds.length != (noFd ? 0 : 1)) throw new VhostUserProtocolException("request " + req + ": " + fds.length + " fds with nofd=" + noFd);
        VhostUserQueue q = queue(req, v & VRING_IDX_MASK);
        int fd = noFd ? -1 : fds[0];
        if (!noFd) fds[0] = -1;   // taken
        switch (req) {
            case SET_VRING_CALL -> {
                q.setCallFd(fd);
                // A back-end that died between publishing used entries and writing its call fd
                // leaves a guest waiting for an interrupt that no later back-end owes it: the
                // entries are used, nothing is in flight, and the guest never looks. One signal
                // on every new call fd settles that (libvhost-user does the same); a spurious
                // interrupt costs the guest a look at an unchanged used ring.
                if (fd >= 0) q.signalCall();
            }
            case SET_VRING_ERR -> q.setErrFd(fd);
            default -> {
                if (noFd) {
                    q.setKickFd(-1);
                    throw new VhostUserProtocolException("SET_VRING_KICK without an fd (polling mode) is not supported");
                }
                stopRunning(q);
                q.setKickFd(fd);
                q.started = true;
                maybeStart(q);
            }
        }
    }

    private void setVringEnable(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        expect(SET_VRING_ENABLE, size, VRING_STATE_SIZE, fds, 0);
        VhostUserQueue q = queue(SET_VRING_ENABLE, Integer.toUnsignedLong(p.getInt(0)));
        int e = p.getInt(4);
        if (e != 0 && e != 1) throw new VhostUserProtocolException("SET_VRING_ENABLE: value " + e);
        q.enabled = e == 1;
        if (q.enabled) maybeStart(q); else stopRunning(q);
    }

    /** Starts the backend on q once it is started, enabled and fully described. */
    private void maybeStart(VhostUserQueue q) throws VhostUserProtocolException {
        if (q.running || !q.started || !q.enabled) return;
        if (q.size == 0 || !q.addrSet) {
            throw new VhostUserProtocolException("ring " + q.index() + " kicked before SET_VRING_NUM/SET_VRING_ADDR");
        }
        translate(q, memory);
        q.memory = memory;
        q.inflight = null;
        if (inflight != null) {
            q.inflight = inflight.queue(q.index(), q.size);
            if (q.inflight == null) {
                throw new VhostUserProtocolException("ring " + q.index() + " (size " + q.size + ") does not fit the inflight region ("
                        + inflight.numQueues() + " queues of " + inflight.queueSize() + ")");
            }
        }
        String err = backend.startQueue(q);
        if (err != null) throw new VhostUserProtocolException("ring " + q.index() + ": " + err);
        q.running = true;
        log.accept("vhost-user: queue " + q.index() + " started (size " + q.size + ", base " + q.lastAvailIdx
                + (q.inflight != null ? ", inflight tracked" : "") + ")");
    }

    private void stopRunning(VhostUserQueue q) {
        if (!q.running) return;
        q.running = false;
        q.lastAvailIdx = backend.stopQueue(q) & 0xffff;
        log.accept("vhost-user: queue " + q.index() + " stopped (next avail " + q.lastAvailIdx + ")");
    }

    // ---------------------------------------------------------------- config

    private void getConfig(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        requireProtocol(GET_CONFIG, PROTOCOL_F_CONFIG);
        int len = configLen(GET_CONFIG, size, p, fds);
        int off = p.getInt(0);
        byte[] cfg = backend.readConfig();
        byte[] body = new byte[CONFIG_HEADER + len];
        ByteBuffer.wrap(body).order(ByteOrder.LITTLE_ENDIAN).putInt(off).putInt(len).putInt(p.getInt(8));
        if (off < cfg.length) System.arraycopy(cfg, off, body, CONFIG_HEADER, Math.min(len, cfg.length - off));
        reply(GET_CONFIG, body, body.length);
    }

    private boolean setConfig(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        requireProtocol(SET_CONFIG, PROTOCOL_F_CONFIG);
        int len = configLen(SET_CONFIG, size, p, fds);
        byte[] data = new byte[len];
        p.get(CONFIG_HEADER, data);
        boolean ok = backend.writeConfig(p.getInt(0), data);
        if (!ok) log.accept("vhost-user: SET_CONFIG offset " + p.getInt(0) + " size " + len + " refused (read-only field)");
        return ok;
    }

    private static int configLen(int req, int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        if (size < CONFIG_HEADER) throw new VhostUserProtocolException("request " + req + ": payload of " + size + " bytes");
        int off = p.getInt(0), len = p.getInt(4);
        if (off < 0 || len < 0 || len > CONFIG_MAX || off > CONFIG_MAX - len) {
            throw new VhostUserProtocolException("request " + req + ": config range " + Integer.toUnsignedString(off) + "+" + Integer.toUnsignedString(len));
        }
        expect(req, size, CONFIG_HEADER + len, fds, 0);
        return len;
    }

    /** Sends BACKEND_CONFIG_CHANGE_MSG on the backend channel (resize). Any thread; no-op without a channel. */
    private void notifyConfigChange() {
        UnixSocket bc = backendChannel;
        if (bc == null || !hasProtocol(PROTOCOL_F_CONFIG)) return;
        byte[] m = new byte[HEADER_SIZE];
        ByteBuffer.wrap(m).order(ByteOrder.LITTLE_ENDIAN).putInt(BACKEND_CONFIG_CHANGE_MSG).putInt(VERSION).putInt(0);
        long r = bc.send(m, 0, m.length);
        log.accept(r < 0 ? "vhost-user: config-change notice failed: " + Errno.describe((int) -r) : "vhost-user: config-change notice sent");
    }

    // ---------------------------------------------------------------- inflight

    private void getInflightFd(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        requireOwner(GET_INFLIGHT_FD);
        requireProtocol(GET_INFLIGHT_FD, PROTOCOL_F_INFLIGHT_SHMFD);
        expect(GET_INFLIGHT_FD, size, INFLIGHT_SIZE, fds, 0);
        int nq = Short.toUnsignedInt(p.getShort(16)), qs = Short.toUnsignedInt(p.getShort(18));
        if (nq > queues.length) throw new VhostUserProtocolException("GET_INFLIGHT_FD: " + nq + " queues, device has " + queues.length);
        if (anyRunning()) throw new VhostUserProtocolException("GET_INFLIGHT_FD while a ring is started");
        InflightRegion r = InflightRegion.create(nq, qs);
        if (inflight != null) inflight.close();
        inflight = r;
        byte[] b = new byte[INFLIGHT_SIZE];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(r.mmapSize()).putLong(0).putShort((short) nq).putShort((short) qs);
        reply(GET_INFLIGHT_FD, b, b.length, r.fd());
        log.accept("vhost-user: inflight region of " + r.mmapSize() + " bytes for " + nq + " queues of " + qs);
    }

    private void setInflightFd(int size, ByteBuffer p, int[] fds) throws VhostUserProtocolException {
        requireOwner(SET_INFLIGHT_FD);
        requireProtocol(SET_INFLIGHT_FD, PROTOCOL_F_INFLIGHT_SHMFD);
        expect(SET_INFLIGHT_FD, size, INFLIGHT_SIZE, fds, 1);
        if (anyRunning()) throw new VhostUserProtocolException("SET_INFLIGHT_FD while a ring is started");
        int nq = Short.toUnsignedInt(p.getShort(16)), qs = Short.toUnsignedInt(p.getShort(18));
        if (nq > queues.length) throw new VhostUserProtocolException("SET_INFLIGHT_FD: " + nq + " queues, device has " + queues.length);
        int fd = fds[0];
        fds[0] = -1;
        InflightRegion r = InflightRegion.attach(fd, p.getLong(0), p.getLong(8), nq, qs);
        if (inflight != null) inflight.close();
        inflight = r;
        log.accept("vhost-user: inflight region set (" + r.mmapSize() + " bytes, " + nq + " queues of " + qs + ")");
    }

    // ---------------------------------------------------------------- for tests

    long negotiatedFeatures() { return features; }
    GuestMemoryTable memoryTable() { return memory; }
}

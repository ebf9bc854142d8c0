// node-addon-api bridge to PC/SC (libpcsclite). Bytes in, bytes out: APDU
// semantics live in src/apdu/, friendly types and errors in src/pcsc/.
//
// Every call that can block (IPC to pcscd, the card, a transaction held by
// another process, a status-change wait, which may never end) runs as a Job
// on the bridge's own threads (Threads), never on the libuv pool, and settles
// a Promise through its environment's Mailbox. Failures reject with an Error
// carrying `scode` (the SCARD_* code) and `operation`; src/pcsc/ turns it
// into PcscError.
//
// pcsc-lite serialises the calls of one SCARDCONTEXT behind one mutex, and
// SCardGetStatusChange holds it for the whole wait. So a Monitor (its own
// context) does the waiting and each Card owns a private context: a pending
// wait never stalls a transmit, and SCardCancel only ever aborts the wait.
#include <napi.h>
#include <pthread.h>
#include <winscard.h>
#include <reader.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

// pcsc-lite 1.9.x's SCardDisconnect looks its handle up by walking the
// process-wide list of contexts and their card lists without the library's
// own lock, while SCardReleaseContext frees a context's entry and another
// SCardDisconnect unlinks a card: run side by side on several threads they
// can read freed memory. Every call that walks or changes those lists in a
// way the library does not lock takes this lock (short round trips to
// pcscd), SCardEstablishContext's append included: the library links a new
// element before it sets the element's own next pointer, which a walker
// could follow meanwhile. SCardConnect's append to its context's card list
// is left out: SCardConnect can wait on pcscd for as long as another
// application holds the card, and a disconnect waiting behind it could be
// the one that application waits for.
std::mutex g_listLock;

LONG EstablishContext(SCARDCONTEXT* ctx) {
  std::lock_guard<std::mutex> hold(g_listLock);
  return SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, ctx);
}

// Disconnects `card` (none when 0) with `disposition`, then releases `ctx`;
// answers the disconnect's result, or the release's when there is no card.
LONG ReleaseContext(SCARDCONTEXT ctx, SCARDHANDLE card = 0, DWORD disposition = SCARD_LEAVE_CARD) {
  std::lock_guard<std::mutex> hold(g_listLock);
  if (!card) return SCardReleaseContext(ctx);
  LONG rv = SCardDisconnect(card, disposition);
  SCardReleaseContext(ctx);
  return rv;
}

// The bridge's threads carry names, so that top, gdb and /proc tell them
// apart (pcsc-bridge.test.ts counts them by name).
void NameThisThread(const char* name) {
#if defined(__linux__)
  pthread_setname_np(pthread_self(), name);
#elif defined(__APPLE__)
  pthread_setname_np(name);
#endif
}

// Releases the contexts of objects collected without release()/disconnect(),
// disconnecting a card first with SCARD_LEAVE_CARD (released with its context
// alone, pcscd disconnects a handle that holds a transaction with a warm
// reset, under every application sharing the card), off the JS thread (pcscd
// may have to talk to the reader first, and the reader may be served by this
// very process: vpcd with a virtual card in JS),
// one at a time on one thread. At exit it is drained before libpcsclite's own
// destructor frees the context list under it: exit() runs static destructors
// such as ReaperDrain's before the shared libraries' finalisers. The Reaper
// itself is never freed: a release still running when the bounded drain gives
// up finds its queue and lock whole, and the thread stops before the next one.
class Reaper {
 public:
  // `card` 0: a context without a card (a monitor's).
  void Release(SCARDCONTEXT ctx, SCARDHANDLE card = 0) {
    std::lock_guard<std::mutex> hold(m_);
    if (stopped_) return;
    queue_.push_back({ctx, card});
    // pthread, not std::thread: built without C++ exceptions, a thread that cannot be made would end
    // the process in std::terminate, here from a garbage collector's finaliser. Then the entry waits
    // for the next release to try again.
    if (!started_) started_ = pthread_create(&thread_, nullptr, &Reaper::Main, this) == 0;
    cv_.notify_all();
  }

  void Drain() {
    std::unique_lock<std::mutex> hold(m_);
    stopped_ = true;
    cv_.notify_all();
    if (!started_) return;
    // Bounded: a pcscd that stopped answering must not hang the exit. Drained, the thread is joined:
    // its own exit (thread-local clean-up, libpcsclite's among it) is over before the library's finalisers.
    if (cv_.wait_for(hold, std::chrono::seconds(2), [this] { return queue_.empty() && !busy_; })) {
      hold.unlock();
      pthread_join(thread_, nullptr);
    } else {
      abandoned_ = true;
    }
  }

 private:
  static void* Main(void* self) {
    NameThisThread("senv-pcsc-rel");
    static_cast<Reaper*>(self)->Run();
    return nullptr;
  }

  void Run() {
    std::unique_lock<std::mutex> hold(m_);
    for (;;) {
      cv_.wait(hold, [this] { return stopped_ || !queue_.empty(); });
      if (queue_.empty() || abandoned_) break;
      Entry e = queue_.front();
      queue_.pop_front();
      busy_ = true;
      hold.unlock();
      ReleaseContext(e.ctx, e.card);
      hold.lock();
      busy_ = false;
      cv_.notify_all();
    }
  }

  struct Entry {
    SCARDCONTEXT ctx;
    SCARDHANDLE card;
  };
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;
  pthread_t thread_{};
  bool started_ = false;
  bool busy_ = false;
  bool stopped_ = false;
  bool abandoned_ = false;
};

Reaper* const g_reaper = new Reaper;

struct ReaperDrain {
  ~ReaperDrain() { g_reaper->Drain(); }
} g_reaperDrain;

struct Mailbox;

struct AddonData {
  Napi::FunctionReference cardCtor;
  Napi::FunctionReference monitorCtor;
  std::shared_ptr<Mailbox> mailbox;
};

Napi::Error ScardError(Napi::Env env, const char* operation, LONG rv) {
  Napi::Error err = Napi::Error::New(env, std::string(operation) + ": " + pcsc_stringify_error(rv));
  err.Set("scode", Napi::Number::New(env, static_cast<double>(static_cast<uint32_t>(rv))));
  err.Set("operation", Napi::String::New(env, operation));
  return err;
}

// Whether JavaScript can run in `env`: not while a worker shuts down (Worker#terminate(), or
// process.exit() in the worker), when Node still completes the jobs in flight. Every value made
// then comes back empty, and node-addon-api aborts the process on the first one used. The call
// is one that refuses to run then (Node-API's preamble), with no effect otherwise.
bool CanRunJs(napi_env env) {
  void* data = nullptr;
  napi_value probe;
  return napi_create_arraybuffer(env, 0, &data, &probe) == napi_ok;
}

// The bridge's own threads. On the libuv pool a call that does not return (a
// pcscd that stopped answering, a reader driver that hangs, an endless
// status-change wait) held a pool thread for good: four of them
// (UV_THREADPOOL_SIZE) stalled every file read, DNS lookup and zlib call of the
// process, and Node joins the pool's threads on process.exit() and waits for
// an environment's pool work when it ends, so a single one hung the exit. A
// thread is made when none is idle (src/pcsc/ runs one call at a time per
// context and per connection), and one idle for 30 s ends. Detached: nothing
// waits for a thread that pcscd holds. Never freed, as the Reaper.
class Threads {
 public:
  // False when `task` cannot run: no thread was idle and none could be made.
  bool Run(std::function<void()> task) {
    std::lock_guard<std::mutex> hold(m_);
    if (idle_ <= queue_.size() && !Spawn()) return false;
    queue_.push_back(std::move(task));
    cv_.notify_one();
    return true;
  }

 private:
  // pthread, not std::thread: built without C++ exceptions, a thread that cannot be made (a pids
  // or address-space limit) would end the process in std::terminate instead of failing the call.
  bool Spawn() {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int err = pthread_create(&thread, &attr, &Threads::Main, this);
    pthread_attr_destroy(&attr);
    return err == 0;
  }

  static void* Main(void* self) {
    NameThisThread("senv-pcsc");
    static_cast<Threads*>(self)->Work();
    return nullptr;
  }

  void Work() {
    std::unique_lock<std::mutex> hold(m_);
    for (;;) {
      idle_++;
      bool work = cv_.wait_for(hold, std::chrono::seconds(30), [this] { return !queue_.empty(); });
      idle_--;
      if (!work) return;
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      hold.unlock();
      task();
      task = nullptr;
      hold.lock();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  size_t idle_ = 0;
};

Threads* const g_threads = new Threads;

// The calls under way on one handle (a Card's connection, a Monitor's
// context), shared by its jobs and its finaliser. The finaliser runs at the
// latest when its environment ends, and then possibly under a call still
// running (one pcscd or the card holds, left to its thread): the release it
// hands to the Reaper waits until the last of them returned, since a context
// must not be released under a call that uses it.
class InUse {
 public:
  void Enter() {
    std::lock_guard<std::mutex> hold(m_);
    running_++;
  }

  void Leave() {
    std::function<void()> release;
    {
      std::lock_guard<std::mutex> hold(m_);
      if (--running_ == 0) {
        release.swap(release_);
        idle_.notify_all();
      }
    }
    if (release) release();
  }

  // Whether no call is under way, waiting at most `wait` for the last to return.
  bool Idle(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> hold(m_);
    return idle_.wait_for(hold, wait, [this] { return running_ == 0; });
  }

  // Runs `release` now, or once the last call under way has returned.
  void ReleaseWhenIdle(std::function<void()> release) {
    {
      std::lock_guard<std::mutex> hold(m_);
      if (running_ > 0) {
        release_ = std::move(release);
        return;
      }
    }
    release();
  }

 private:
  std::mutex m_;
  std::condition_variable idle_;
  int running_ = 0;
  std::function<void()> release_;
};

// A call that can be ended early: a status-change wait, by SCardCancel on its context while it
// has not returned.
struct Cancellable {
  SCARDCONTEXT ctx = 0;
  std::function<bool()> running;
};

// Ends `waits` as their environment exits or ends: cancels each every 2 ms
// while it runs (a cancel that lands before pcsc-lite set the wait up is
// lost), from bridge threads, and waits for them to return, 2 s at most in
// all. A pcscd that stopped answering blocks SCardCancel itself: called on
// the JS thread, it held the exit for good.
void EndWaits(const std::vector<Cancellable>& waits) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  auto running = [until](const Cancellable& w) { return w.running() && std::chrono::steady_clock::now() < until; };
  for (const Cancellable& w : waits) {
    g_threads->Run([w, running] {
      while (running(w)) {
        SCardCancel(w.ctx);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  for (const Cancellable& w : waits) {
    while (running(w)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

class Job;
struct Mailbox;
void DeliverJob(Napi::Env env, Napi::Function, Mailbox* box, Job* job);
using JobTsfn = Napi::TypedThreadSafeFunction<Mailbox, Job, DeliverJob>;

// Where finished jobs go back to one environment's JS thread (the main
// thread's, or a worker's): one thread-safe function, referenced while a job
// of the environment holds it (a pending call keeps its environment alive, as
// any does, until src/pcsc/ lets go of one that outlived its timeout:
// UnrefCall). Node frees that function when the environment ends, even
// under a thread still holding it, so a thread calls it only under `lock`
// while `open`; the finaliser (Close) shuts the box first and leaves each job
// still running to its thread, which then settles nothing and gives back what
// the call opened. Shared with the jobs: it outlives the environment.
struct Mailbox {
  std::mutex lock;
  bool open = true;
  JobTsfn tsfn;
  // The jobs started here and not yet settled, and how many of them keep the environment alive;
  // JS thread only.
  std::unordered_set<Job*> jobs;
  size_t holding = 0;
  // Set at the environment's 'exit' (EndForExit) and at its end: a status-change wait that starts
  // later returns at once.
  std::atomic<bool> exiting{false};

  // The waits to end as the environment exits or ends: those still holding it. One let go of
  // outlived its timeout: pcscd did not answer it, and would not answer its cancel either.
  std::vector<Cancellable> Waits() const;

  static void Close(Napi::Env env, std::shared_ptr<Mailbox>* self, Mailbox*);
};

// Runs `exec` on a bridge thread; `done` settles the promise on the JS thread
// when exec returned SCARD_S_SUCCESS. `keep` pins the JS object whose handle
// the job uses, so the handle cannot be finalised while the job runs, and
// `use` (that object's) holds back the release of a handle finalised anyway
// at its environment's end. When no
// JavaScript can run any more to settle it (the environment ended, or is
// ending: a worker's shutdown completes the jobs in flight with JavaScript
// stopped), `orphan` gives back what a successful exec opened (a context, a
// connection) that no object will own, and `cancel` (a wait's) ends a call
// still running (EndWaits).
class Job {
 public:
  using Exec = std::function<LONG()>;
  using Done = std::function<void(Napi::Env, Napi::Promise::Deferred&)>;
  using Orphan = std::function<void()>;

  static Napi::Promise Start(Napi::Env env, const char* operation, Napi::Object keep, std::shared_ptr<InUse> use, Exec exec,
                             Done done, Orphan orphan = nullptr, Cancellable cancel = {}) {
    std::shared_ptr<Mailbox> box = env.GetInstanceData<AddonData>()->mailbox;
    auto* job = new Job(env, operation, keep, std::move(use), std::move(exec), std::move(done), std::move(orphan), std::move(cancel), box);
    Napi::Promise promise = job->deferred_.Promise();
    box->jobs.insert(job);
    if (box->holding++ == 0) box->tsfn.Ref(env);
    if (job->use_) job->use_->Enter();
    if (!g_threads->Run([job] { job->Execute(); })) {
      if (job->use_) job->use_->Leave();
      job->Settle(env);
      job->Forget(env);
      delete job;
    }
    return promise;
  }

  // unrefCall(promise): the call whose promise this is no longer keeps its environment alive
  // (src/pcsc/ gave up waiting for it). False when it is no pending call of this environment.
  static Napi::Value UnrefCall(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Mailbox* box = env.GetInstanceData<AddonData>()->mailbox.get();
    for (Job* job : box->jobs) {
      // The deferred keeps the promise alive while the job is pending; checked all the same.
      Napi::Value promise = job->promise_.IsEmpty() ? Napi::Value() : job->promise_.Value();
      if (job->holding_ && !promise.IsEmpty() && promise.StrictEquals(info[0])) {
        job->holding_ = false;
        if (--box->holding == 0) box->tsfn.Unref(env);
        return Napi::Boolean::New(env, true);
      }
    }
    return Napi::Boolean::New(env, false);
  }

 private:
  friend struct Mailbox;
  friend void DeliverJob(Napi::Env env, Napi::Function, Mailbox* box, Job* job);

  Job(Napi::Env env, const char* operation, Napi::Object keep, std::shared_ptr<InUse> use, Exec exec, Done done, Orphan orphan,
      Cancellable cancel, std::shared_ptr<Mailbox> box)
      : deferred_(Napi::Promise::Deferred::New(env)),
        operation_(operation),
        use_(std::move(use)),
        exec_(std::move(exec)),
        done_(std::move(done)),
        orphan_(std::move(orphan)),
        cancel_(std::move(cancel)),
        box_(std::move(box)) {
    if (!keep.IsEmpty()) keep_ = Napi::Persistent(keep);
    promise_ = Napi::Weak(deferred_.Promise());
  }

  // On the JS thread: the job leaves its environment's books.
  void Forget(Napi::Env env) {
    box_->jobs.erase(this);
    if (holding_ && --box_->holding == 0) box_->tsfn.Unref(env);
  }

  // On the JS thread, at the environment's end: the job's references go while they still can.
  void Abandon() {
    keep_.Reset();
    promise_.Reset();
  }

  // On a bridge thread.
  void Execute() {
    rv_ = exec_();
    if (use_) use_->Leave();
    std::shared_ptr<Mailbox> box = box_;
    std::unique_lock<std::mutex> hold(box->lock);
    if (!box->open) {
      // Close() let go of this job: its references are gone, it is this thread's to dispose of.
      hold.unlock();
      GiveBack();
      delete this;
      return;
    }
    returned_ = true;
    // Refused once the environment began to end: Close() then disposes of the job.
    box->tsfn.NonBlockingCall(this);
  }

  // On the JS thread: settles the promise with rv_ (SCARD_E_NO_MEMORY until exec ran).
  void Settle(Napi::Env env) {
    if (!CanRunJs(env)) {
      GiveBack();
      return;
    }
    Napi::HandleScope scope(env);
    if (rv_ != SCARD_S_SUCCESS)
      deferred_.Reject(ScardError(env, operation_, rv_).Value());
    else
      done_(env, deferred_);
  }

  // When nothing can be settled: gives back what a successful call opened.
  void GiveBack() {
    if (rv_ == SCARD_S_SUCCESS && orphan_) orphan_();
  }

  Napi::Promise::Deferred deferred_;
  const char* operation_;
  std::shared_ptr<InUse> use_;
  Exec exec_;
  Done done_;
  Orphan orphan_;
  Cancellable cancel_;
  std::shared_ptr<Mailbox> box_;
  Napi::ObjectReference keep_;
  // Weak: what UnrefCall knows the call by.
  Napi::Reference<Napi::Promise> promise_;
  // Counted in the box's `holding` (JS thread only).
  bool holding_ = true;
  LONG rv_ = SCARD_E_NO_MEMORY;
  // Under the box's lock: exec returned while the box was open.
  bool returned_ = false;
};

// On the JS thread; `env` is null when the environment ended before the job was delivered (Close
// disposed of it then).
void DeliverJob(Napi::Env env, Napi::Function, Mailbox*, Job* job) {
  if (env == nullptr) return;
  job->Forget(env);
  job->Settle(env);
  delete job;
}

std::vector<Cancellable> Mailbox::Waits() const {
  std::vector<Cancellable> waits;
  for (Job* job : jobs) {
    if (job->cancel_.running && job->holding_) waits.push_back(job->cancel_);
  }
  return waits;
}

// The finaliser of the environment's thread-safe function, on the JS thread at the environment's
// end. A job that returned is disposed of here (its call gave nothing to settle, and its
// references are deleted while the environment still can); one still running loses its
// references and is left to its thread; a running wait is ended (EndWaits), so that it does not
// hold its context's lock for good.
void Mailbox::Close(Napi::Env, std::shared_ptr<Mailbox>* self, Mailbox* box) {
  std::vector<Job*> returned;
  std::vector<Cancellable> waits = box->Waits();
  {
    std::lock_guard<std::mutex> hold(box->lock);
    box->open = false;
    for (Job* job : box->jobs) {
      if (job->returned_) {
        returned.push_back(job);
      } else {
        job->Abandon();
      }
    }
    box->jobs.clear();
  }
  box->exiting = true;
  for (Job* job : returned) {
    job->GiveBack();
    delete job;
  }
  EndWaits(waits);
  delete self;
}

// endForExit(), at the environment's 'exit' (the process's exit ends no environment: a wait
// thread would still be inside pcsc-lite when exit() runs the library's destructor): no wait of
// this environment starts any more, and the running ones are ended (EndWaits).
Napi::Value EndForExit(const Napi::CallbackInfo& info) {
  Mailbox* box = info.Env().GetInstanceData<AddonData>()->mailbox.get();
  box->exiting = true;
  EndWaits(box->Waits());
  return info.Env().Undefined();
}

// Argument checks: a wrong type rejects with a TypeError instead of reading
// through a bad cast (src/pcsc/ validates first; this guards direct callers).
Napi::Promise TypeRejected(Napi::Env env, const std::string& message) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(Napi::TypeError::New(env, message).Value());
  return d.Promise();
}

bool IsBytes(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

Napi::Promise Rejected(Napi::Env env, const char* operation, LONG rv) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(ScardError(env, operation, rv).Value());
  return d.Promise();
}

// A plain Uint8Array, not a Buffer: Buffer#slice() aliases instead of
// copying, and callers of a crypto API rightly expect slice() to copy.
Napi::Uint8Array Bytes(Napi::Env env, const uint8_t* data, size_t len) {
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, len);
  if (len) std::memcpy(ab.Data(), data, len);
  return Napi::Uint8Array::New(env, len, ab, 0);
}

// An APDU buffer: commands carry imported keys and plaintext, responses
// plaintext and random bytes, so the copy held here is zeroized when the
// last job holding it lets go (explicit_bzero: a plain memset before
// freeing may be optimised away).
struct Wiped {
  std::vector<uint8_t> bytes;
  explicit Wiped(std::vector<uint8_t> b) : bytes(std::move(b)) {}
  explicit Wiped(size_t n) : bytes(n) {}
  Wiped(const Wiped&) = delete;
  Wiped& operator=(const Wiped&) = delete;
  ~Wiped() { explicit_bzero(bytes.data(), bytes.size()); }
};

std::shared_ptr<Wiped> BytesArg(const Napi::Value& v) {
  auto a = v.As<Napi::Uint8Array>();
  return std::make_shared<Wiped>(std::vector<uint8_t>(a.Data(), a.Data() + a.ByteLength()));
}

DWORD DwordArg(const Napi::CallbackInfo& info, size_t i, DWORD fallback) {
  return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Uint32Value() : fallback;
}

// Whether the DWORD arguments from..to-1 are numbers or absent: another value is a TypeError, not
// the default (a disposition 'cold' would have skipped the reset it asked for).
bool DwordsGiven(const Napi::CallbackInfo& info, size_t from, size_t to) {
  for (size_t i = from; i < to && i < info.Length(); i++) {
    if (!info[i].IsNumber() && !info[i].IsUndefined()) return false;
  }
  return true;
}

// A response buffer's size: what the caller asks for, at most what PC/SC can return (a direct
// caller's 4 GiB would be allocated and zeroed, or abort the process when it cannot be).
DWORD ResponseSize(const Napi::CallbackInfo& info, size_t i) {
  return std::min<DWORD>(DwordArg(info, i, MAX_BUFFER_SIZE_EXTENDED), MAX_BUFFER_SIZE_EXTENDED);
}

// "a\0b\0\0" -> ["a", "b"]
Napi::Array MultiString(Napi::Env env, const std::vector<char>& buf) {
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (size_t i = 0; i < buf.size() && buf[i] != '\0';) {
    std::string s(&buf[i]);
    out.Set(n++, s);
    i += s.size() + 1;
  }
  return out;
}

const SCARD_IO_REQUEST* SendPci(DWORD protocol) {
  switch (protocol) {
    case SCARD_PROTOCOL_T0: return SCARD_PCI_T0;
    case SCARD_PROTOCOL_T1: return SCARD_PCI_T1;
    default: return SCARD_PCI_RAW;
  }
}

// ---------------------------------------------------------------------------
// Card: one connection (private context + card handle).

class Card : public Napi::ObjectWrap<Card> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Card", {
      InstanceMethod<&Card::Transmit>("transmit"),
      InstanceMethod<&Card::Reconnect>("reconnect"),
      InstanceMethod<&Card::BeginTransaction>("beginTransaction"),
      InstanceMethod<&Card::EndTransaction>("endTransaction"),
      InstanceMethod<&Card::Status>("status"),
      InstanceMethod<&Card::Control>("control"),
      InstanceMethod<&Card::Disconnect>("disconnect"),
      InstanceAccessor<&Card::Protocol>("protocol"),
      InstanceAccessor<&Card::Connected>("connected"),
    });
  }

  explicit Card(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Card>(info) {}

  ~Card() override {
    // The object was collected without disconnect(): give the card back to
    // other applications as it is (SCARD_LEAVE_CARD, also from inside a
    // transaction). Never on the JS thread: a blocking call here deadlocked a
    // test run for good.
    if (!state_->open) return;
    state_->open = false;
    std::shared_ptr<Handle> h = state_;
    use_->ReleaseWhenIdle([h] { g_reaper->Release(h->ctx, h->card); });
  }

  // Opened off-thread by Monitor::Connect; adopted here on the JS thread.
  struct Handle {
    SCARDCONTEXT ctx = 0;
    SCARDHANDLE card = 0;
    DWORD protocol = 0;
    bool open = false;
  };
  void Adopt(const Handle& h) { *state_ = h; }

  static LONG Close(Handle& h, DWORD disposition) {
    h.open = false;
    return ReleaseContext(h.ctx, h.card, disposition);
  }

 private:
  bool Usable(Napi::Env env, const char* op, Napi::Promise* rejected) {
    if (state_->open) return true;
    *rejected = Rejected(env, op, SCARD_E_INVALID_HANDLE);
    return false;
  }

  Napi::Value Transmit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardTransmit", &p)) return p;
    if (!IsBytes(info[0])) return TypeRejected(env, "transmit: the APDU must be a Uint8Array");
    auto st = state_;
    auto cmd = BytesArg(info[0]);
    auto rsp = std::make_shared<Wiped>(ResponseSize(info, 1));
    auto len = std::make_shared<DWORD>(0);
    return Job::Start(env, "SCardTransmit", Value(), use_,
      [st, cmd, rsp, len] {
        *len = static_cast<DWORD>(rsp->bytes.size());
        // Zeroed: pcsc-lite sends it to pcscd as it is (uninitialised, 8 bytes of this stack went out).
        SCARD_IO_REQUEST recvPci = {};
        return SCardTransmit(st->card, SendPci(st->protocol), cmd->bytes.data(), static_cast<DWORD>(cmd->bytes.size()),
                             &recvPci, rsp->bytes.data(), len.get());
      },
      [rsp, len](Napi::Env env, Napi::Promise::Deferred& d) {
        // pcscd reports success with 0 bytes when the card vanishes mid-command;
        // without SW1 SW2 there is no answer, only a broken exchange.
        if (*len < 2) {
          Napi::Error err = Napi::Error::New(env, "SCardTransmit: the card returned " + std::to_string(*len) +
                                                      " bytes, fewer than the two status bytes");
          err.Set("shortResponse", Napi::Number::New(env, *len));
          err.Set("operation", Napi::String::New(env, "SCardTransmit"));
          d.Reject(err.Value());
          return;
        }
        d.Resolve(Bytes(env, rsp->bytes.data(), *len));
      });
  }

  // reconnect(share, protocols, initialization): SCARD_RESET_CARD is a warm
  // reset, SCARD_UNPOWER_CARD a cold one, SCARD_LEAVE_CARD just re-syncs a
  // handle invalidated by another application's reset.
  Napi::Value Reconnect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardReconnect", &p)) return p;
    if (!DwordsGiven(info, 0, 3)) return TypeRejected(env, "reconnect: share, protocols and initialization are numbers");
    auto st = state_;
    DWORD share = DwordArg(info, 0, SCARD_SHARE_SHARED);
    DWORD protocols = DwordArg(info, 1, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
    DWORD init = DwordArg(info, 2, SCARD_LEAVE_CARD);
    auto active = std::make_shared<DWORD>(0);
    return Job::Start(env, "SCardReconnect", Value(), use_,
      [st, share, protocols, init, active] { return SCardReconnect(st->card, share, protocols, init, active.get()); },
      [st, active](Napi::Env env, Napi::Promise::Deferred& d) {
        st->protocol = *active;
        d.Resolve(Napi::Number::New(env, *active));
      });
  }

  Napi::Value BeginTransaction(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardBeginTransaction", &p)) return p;
    auto st = state_;
    return Job::Start(env, "SCardBeginTransaction", Value(), use_,
      [st] { return SCardBeginTransaction(st->card); },
      [](Napi::Env env, Napi::Promise::Deferred& d) { d.Resolve(env.Undefined()); });
  }

  Napi::Value EndTransaction(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardEndTransaction", &p)) return p;
    if (!DwordsGiven(info, 0, 1)) return TypeRejected(env, "endTransaction: the disposition is a number");
    auto st = state_;
    DWORD disposition = DwordArg(info, 0, SCARD_LEAVE_CARD);
    return Job::Start(env, "SCardEndTransaction", Value(), use_,
      [st, disposition] { return SCardEndTransaction(st->card, disposition); },
      [](Napi::Env env, Napi::Promise::Deferred& d) { d.Resolve(env.Undefined()); });
  }

  Napi::Value Status(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardStatus", &p)) return p;
    auto st = state_;
    struct Out {
      char reader[MAX_READERNAME] = {0};
      DWORD readerLen = MAX_READERNAME;
      DWORD state = 0, protocol = 0;
      BYTE atr[MAX_ATR_SIZE] = {0};
      DWORD atrLen = MAX_ATR_SIZE;
    };
    auto out = std::make_shared<Out>();
    return Job::Start(env, "SCardStatus", Value(), use_,
      [st, out] {
        return SCardStatus(st->card, out->reader, &out->readerLen, &out->state, &out->protocol, out->atr, &out->atrLen);
      },
      [out](Napi::Env env, Napi::Promise::Deferred& d) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("reader", Napi::String::New(env, out->reader));
        o.Set("state", Napi::Number::New(env, out->state));
        o.Set("protocol", Napi::Number::New(env, out->protocol));
        o.Set("atr", Bytes(env, out->atr, out->atrLen));
        d.Resolve(o);
      });
  }

  Napi::Value Control(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardControl", &p)) return p;
    if (!IsBytes(info[1])) return TypeRejected(env, "control: the data must be a Uint8Array");
    if (!DwordsGiven(info, 0, 1) || !DwordsGiven(info, 2, 3)) return TypeRejected(env, "control: the code and the response size are numbers");
    auto st = state_;
    DWORD code = DwordArg(info, 0, 0);
    auto in = BytesArg(info[1]);
    auto out = std::make_shared<Wiped>(ResponseSize(info, 2));
    auto len = std::make_shared<DWORD>(0);
    return Job::Start(env, "SCardControl", Value(), use_,
      [st, code, in, out, len] {
        return SCardControl(st->card, code, in->bytes.data(), static_cast<DWORD>(in->bytes.size()), out->bytes.data(),
                            static_cast<DWORD>(out->bytes.size()), len.get());
      },
      [out, len](Napi::Env env, Napi::Promise::Deferred& d) {
        d.Resolve(Bytes(env, out->bytes.data(), *len));
      });
  }

  Napi::Value Disconnect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    // Idempotent, as Monitor::Release is: a second disconnect has nothing left to do.
    if (!state_->open) {
      auto d = Napi::Promise::Deferred::New(env);
      d.Resolve(env.Undefined());
      return d.Promise();
    }
    if (!DwordsGiven(info, 0, 1)) return TypeRejected(env, "disconnect: the disposition is a number");
    // Closed now on the JS thread so that later calls fail fast instead of
    // racing the release on a bridge thread.
    auto h = std::make_shared<Handle>(*state_);
    state_->open = false;
    DWORD disposition = DwordArg(info, 0, SCARD_LEAVE_CARD);
    // Not under a call still running on the connection (a status, a transmit the card holds): the
    // disconnect frees what that call reads (its reader name: a use after free under ASan).
    std::shared_ptr<InUse> use = use_;
    return Job::Start(env, "SCardDisconnect", Value(), nullptr,
      [h, disposition, use] {
        while (!use->Idle(std::chrono::milliseconds(100))) {
        }
        return Close(*h, disposition);
      },
      [](Napi::Env env, Napi::Promise::Deferred& d) { d.Resolve(env.Undefined()); });
  }

  Napi::Value Protocol(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_->protocol); }
  Napi::Value Connected(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), state_->open); }

  // Shared with in-flight jobs so that a job never reads a freed Card.
  std::shared_ptr<Handle> state_ = std::make_shared<Handle>();
  std::shared_ptr<InUse> use_ = std::make_shared<InUse>();
};

// The state a Monitor shares with its jobs.
struct MonitorState {
  SCARDCONTEXT ctx = 0;
  bool open = false;
  // A cancel() is under way on a bridge thread.
  std::atomic<bool> cancelling{false};
};

// ---------------------------------------------------------------------------
// Monitor: the context that lists readers, waits for changes and connects.

class Monitor : public Napi::ObjectWrap<Monitor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Monitor", {
      StaticMethod<&Monitor::Establish>("establish"),
      InstanceMethod<&Monitor::ListReaders>("listReaders"),
      InstanceMethod<&Monitor::GetStatusChange>("getStatusChange"),
      InstanceMethod<&Monitor::Cancel>("cancel"),
      InstanceMethod<&Monitor::Connect>("connect"),
      InstanceMethod<&Monitor::Release>("release"),
    });
  }

  explicit Monitor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Monitor>(info) {}

  ~Monitor() override {
    // Off the JS thread, as for Card.
    if (!state_->open) return;
    state_->open = false;
    SCARDCONTEXT ctx = state_->ctx;
    use_->ReleaseWhenIdle([ctx] { g_reaper->Release(ctx); });
  }

 private:
  static Napi::Value Establish(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto ctx = std::make_shared<SCARDCONTEXT>(0);
    return Job::Start(env, "SCardEstablishContext", Napi::Object(), nullptr,
      [ctx] { return EstablishContext(ctx.get()); },
      [ctx](Napi::Env env, Napi::Promise::Deferred& d) {
        Napi::Object obj = env.GetInstanceData<AddonData>()->monitorCtor.New({});
        auto* m = Monitor::Unwrap(obj);
        m->state_->ctx = *ctx;
        m->state_->open = true;
        d.Resolve(obj);
      },
      [ctx] { g_reaper->Release(*ctx); });
  }

  bool Usable(Napi::Env env, const char* op, Napi::Promise* rejected) {
    if (state_->open) return true;
    *rejected = Rejected(env, op, SCARD_E_INVALID_HANDLE);
    return false;
  }

  Napi::Value ListReaders(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardListReaders", &p)) return p;
    auto st = state_;
    auto buf = std::make_shared<std::vector<char>>();
    return Job::Start(env, "SCardListReaders", Value(), use_,
      [st, buf] {
        // The list can grow between the sizing call and the read; retry then.
        for (;;) {
          DWORD len = 0;
          LONG rv = SCardListReaders(st->ctx, nullptr, nullptr, &len);
          if (rv == SCARD_E_NO_READERS_AVAILABLE) return static_cast<LONG>(SCARD_S_SUCCESS);
          if (rv != SCARD_S_SUCCESS) return rv;
          buf->assign(len + 1, '\0');
          rv = SCardListReaders(st->ctx, nullptr, buf->data(), &len);
          if (rv == SCARD_E_INSUFFICIENT_BUFFER) continue;
          if (rv == SCARD_E_NO_READERS_AVAILABLE) { buf->clear(); return static_cast<LONG>(SCARD_S_SUCCESS); }
          return rv;
        }
      },
      [buf](Napi::Env env, Napi::Promise::Deferred& d) { d.Resolve(MultiString(env, *buf)); });
  }

  // getStatusChange([{ reader, currentState }], timeoutMs) -> [{ reader, eventState, atr }]
  // "\\?PnP?\Notification" as reader name wakes on reader attach/detach.
  Napi::Value GetStatusChange(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardGetStatusChange", &p)) return p;
    if (!info[0].IsArray()) return TypeRejected(env, "getStatusChange: expected an array of { reader, currentState }");
    if (!DwordsGiven(info, 1, 2)) return TypeRejected(env, "getStatusChange: the timeout is a number");
    Napi::Array in = info[0].As<Napi::Array>();
    std::vector<std::string> names;
    std::vector<DWORD> current;
    for (uint32_t i = 0; i < in.Length(); i++) {
      // Each member is read once (a getter may answer differently the second time), and a getter
      // that throws rejects with its exception instead of leaving it pending.
      Napi::Value item = in.Get(i);
      Napi::Value reader, state;
      if (!env.IsExceptionPending() && item.IsObject()) reader = item.As<Napi::Object>().Get("reader");
      if (!env.IsExceptionPending() && item.IsObject()) state = item.As<Napi::Object>().Get("currentState");
      if (env.IsExceptionPending()) {
        // Cleared first: no promise can be made while an exception is pending.
        Napi::Error thrown = env.GetAndClearPendingException();
        auto d = Napi::Promise::Deferred::New(env);
        d.Reject(thrown.Value());
        return d.Promise();
      }
      if (reader.IsEmpty() || !reader.IsString() || state.IsEmpty() || !state.IsNumber())
        return TypeRejected(env, "getStatusChange: expected an array of { reader, currentState }");
      names.push_back(reader.As<Napi::String>().Utf8Value());
      if (names.back().find('\0') != std::string::npos) return TypeRejected(env, "getStatusChange: a reader name must not contain NUL");
      current.push_back(state.As<Napi::Number>().Uint32Value());
    }
    // Again: a getter above may have released the context (a direct caller of the addon).
    if (!Usable(env, "SCardGetStatusChange", &p)) return p;
    struct Wait {
      std::vector<std::string> names;
      std::vector<SCARD_READERSTATE> states;
      std::atomic<bool> returned{false};
    };
    auto w = std::make_shared<Wait>();
    w->names = std::move(names);
    w->states.resize(w->names.size());
    for (size_t i = 0; i < w->states.size(); i++) {
      std::memset(&w->states[i], 0, sizeof w->states[i]);
      w->states[i].szReader = w->names[i].c_str();
      w->states[i].dwCurrentState = current[i];
    }
    auto st = state_;
    std::shared_ptr<Mailbox> box = env.GetInstanceData<AddonData>()->mailbox;
    // pcsc-lite hands the timeout to poll() as an int: a larger finite one would wrap round to a
    // negative value, which poll() takes as forever.
    DWORD timeout = DwordArg(info, 1, INFINITE);
    if (timeout != INFINITE && timeout > 0x7FFFFFFF) timeout = 0x7FFFFFFF;
    return Job::Start(env, "SCardGetStatusChange", Value(), use_,
      [st, w, box, timeout] {
        // A cancel still under way (sent for an earlier wait from a bridge thread, not waited for)
        // would end this one: it is let finish first, for at most a second (a pcscd that stopped
        // answering holds it; this wait then goes ahead). A cancel meant for this wait that lands
        // before it started is repeated by src/pcsc/ until the wait ended.
        for (int i = 0; i < 500 && st->cancelling.load(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        // The exit flag is set before EndWaits looks for waits that have not returned (both
        // sequentially consistent): either this wait sees it, or it is cancelled until it returned.
        LONG rv = box->exiting ? static_cast<LONG>(SCARD_E_CANCELLED)
                               : SCardGetStatusChange(st->ctx, timeout, w->states.data(), static_cast<DWORD>(w->states.size()));
        w->returned = true;
        return rv;
      },
      [w](Napi::Env env, Napi::Promise::Deferred& d) {
        Napi::Array out = Napi::Array::New(env, w->states.size());
        for (size_t i = 0; i < w->states.size(); i++) {
          const SCARD_READERSTATE& rs = w->states[i];
          Napi::Object o = Napi::Object::New(env);
          o.Set("reader", Napi::String::New(env, w->names[i]));
          o.Set("eventState", Napi::Number::New(env, rs.dwEventState));
          o.Set("atr", Bytes(env, rs.rgbAtr, rs.cbAtr));
          out.Set(static_cast<uint32_t>(i), o);
        }
        d.Resolve(out);
      },
      nullptr,
      // Also when the monitor was released or collected meanwhile: the context cannot be released
      // under the wait, pcsc-lite's release waits for the lock the wait holds.
      Cancellable{st->ctx, [w] { return !w->returned.load(); }});
  }

  // SCardCancel, the one call meant to be made while another thread waits, sent from a bridge
  // thread, one at a time per context, and not waited for: a pcscd that stopped answering blocks it
  // during a wait, and on the JS thread it held the whole environment. src/pcsc/ repeats the cancel
  // until the wait ended.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    auto st = state_;
    if (st->open && !st->cancelling.exchange(true)) {
      if (!g_threads->Run([st] {
            SCardCancel(st->ctx);
            st->cancelling = false;
          }))
        st->cancelling = false;
    }
    return info.Env().Undefined();
  }

  // connect(reader, share, protocols) -> Card, on a context of its own.
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Promise p;
    if (!Usable(env, "SCardConnect", &p)) return p;
    if (!info[0].IsString()) return TypeRejected(env, "connect: the reader name must be a string");
    auto reader = std::make_shared<std::string>(info[0].As<Napi::String>().Utf8Value());
    // A C string ends at its first NUL: "A\0B" would connect to reader "A".
    if (reader->find('\0') != std::string::npos) return TypeRejected(env, "connect: the reader name must not contain NUL");
    if (!DwordsGiven(info, 1, 3)) return TypeRejected(env, "connect: share and protocols are numbers");
    DWORD share = DwordArg(info, 1, SCARD_SHARE_SHARED);
    DWORD protocols = DwordArg(info, 2, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1);
    auto h = std::make_shared<Card::Handle>();
    return Job::Start(env, "SCardConnect", Value(), nullptr,
      [reader, share, protocols, h] {
        LONG rv = EstablishContext(&h->ctx);
        if (rv != SCARD_S_SUCCESS) return rv;
        rv = SCardConnect(h->ctx, reader->c_str(), share, protocols, &h->card, &h->protocol);
        if (rv != SCARD_S_SUCCESS) {
          ReleaseContext(h->ctx);
          return rv;
        }
        h->open = true;
        return rv;
      },
      [h](Napi::Env env, Napi::Promise::Deferred& d) {
        auto* data = env.GetInstanceData<AddonData>();
        Napi::Object obj = data->cardCtor.New({});
        Card::Unwrap(obj)->Adopt(*h);
        d.Resolve(obj);
      },
      [h] { g_reaper->Release(h->ctx, h->card); });
  }

  Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!state_->open) {
      auto d = Napi::Promise::Deferred::New(env);
      d.Resolve(env.Undefined());
      return d.Promise();
    }
    state_->open = false;
    SCARDCONTEXT ctx = state_->ctx;
    std::shared_ptr<InUse> use = use_;
    return Job::Start(env, "SCardReleaseContext", Value(), nullptr,
      [ctx, use] {
        // A wait in progress holds the context's lock, which SCardReleaseContext would wait for
        // holding the bridge's list lock: cancelled, off the JS thread (see Cancel), until every
        // call under way returned (a cancel that lands before pcsc-lite set the wait up is lost).
        while (!use->Idle(std::chrono::milliseconds(2))) SCardCancel(ctx);
        return ReleaseContext(ctx);
      },
      [](Napi::Env env, Napi::Promise::Deferred& d) { d.Resolve(env.Undefined()); });
  }

  std::shared_ptr<MonitorState> state_ = std::make_shared<MonitorState>();
  std::shared_ptr<InUse> use_ = std::make_shared<InUse>();
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->mailbox = std::make_shared<Mailbox>();
  data->mailbox->tsfn = JobTsfn::New(env, "senv_pcsc", 0, 1, data->mailbox.get(), &Mailbox::Close,
                                     new std::shared_ptr<Mailbox>(data->mailbox));
  data->mailbox->tsfn.Unref(env);
  Napi::Function card = Card::Define(env);
  data->cardCtor = Napi::Persistent(card);
  env.SetInstanceData(data);
  exports.Set("Card", card);
  Napi::Function monitor = Monitor::Define(env);
  data->monitorCtor = Napi::Persistent(monitor);
  exports.Set("Monitor", monitor);

  Napi::Object c = Napi::Object::New(env);
  auto def = [&](const char* name, uint32_t v) { c.Set(name, Napi::Number::New(env, v)); };
  def("SCARD_SHARE_EXCLUSIVE", SCARD_SHARE_EXCLUSIVE);
  def("SCARD_SHARE_SHARED", SCARD_SHARE_SHARED);
  def("SCARD_SHARE_DIRECT", SCARD_SHARE_DIRECT);
  def("SCARD_PROTOCOL_T0", SCARD_PROTOCOL_T0);
  def("SCARD_PROTOCOL_T1", SCARD_PROTOCOL_T1);
  def("SCARD_PROTOCOL_RAW", SCARD_PROTOCOL_RAW);
  def("SCARD_LEAVE_CARD", SCARD_LEAVE_CARD);
  def("SCARD_RESET_CARD", SCARD_RESET_CARD);
  def("SCARD_UNPOWER_CARD", SCARD_UNPOWER_CARD);
  def("SCARD_EJECT_CARD", SCARD_EJECT_CARD);
  def("SCARD_CTL_CODE_BASE", SCARD_CTL_CODE(0));
  def("INFINITE", INFINITE);
  exports.Set("constants", c);
  exports.Set("pnpReader", Napi::String::New(env, "\\\\?PnP?\\Notification"));
  exports.Set("unrefCall", Napi::Function::New(env, &Job::UnrefCall, "unrefCall"));
  exports.Set("endForExit", Napi::Function::New(env, &EndForExit, "endForExit"));
  return exports;
}

}  // namespace

NODE_API_MODULE(senv_pcsc, Init)

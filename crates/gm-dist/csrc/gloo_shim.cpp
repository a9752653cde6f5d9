// A C interface to PyTorch's c10d Gloo process group, for gm-dist.
//
// The PyTorch wheel ships c10d's headers but not Gloo's, and ProcessGroupGloo.hpp includes
// Gloo's; so this file declares the two members of c10d::ProcessGroupGloo it calls (the
// constructor and Options::create_default, both exported by libtorch_cpu) and reaches every
// collective through c10d::Backend's public virtual interface, whose header is shipped.
// Tensors arrive as the at::Tensor pointers tch hands out.

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroupGloo : public Backend {
 public:
  struct Options : public Backend::Options {
    static c10::intrusive_ptr<Options> create_default(std::chrono::milliseconds timeout);
  };
  ProcessGroupGloo(const c10::intrusive_ptr<Store>& store, int rank, int size,
                   c10::intrusive_ptr<Options> options);
  ~ProcessGroupGloo() override;
};
}  // namespace c10d

namespace {
// Room for the real object (its size is not visible here); several times what it needs.
constexpr std::size_t kGlooObjectBytes = 1 << 16;

char* copy_message(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

template <typename F>
int guarded(char** err, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    *err = copy_message(e.what());
  } catch (...) {
    *err = copy_message("unknown C++ exception");
  }
  return 1;
}
}  // namespace

struct gm_pg {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

extern "C" {

gm_pg* gm_pg_new(const char* host, int port, int rank, int world, int server,
                 const char* prefix, long timeout_ms, char** err) {
  gm_pg* out = nullptr;
  guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = server != 0;
    opts.numWorkers = static_cast<std::size_t>(world);
    opts.waitWorkers = false;  // Gloo's own rendezvous waits for every rank
    opts.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> tcp = c10::make_intrusive<c10d::TCPStore>(host, opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);
    auto gloo_opts = c10d::ProcessGroupGloo::Options::create_default(timeout);
    void* mem = ::operator new(kGlooObjectBytes);
    c10d::ProcessGroupGloo* pg = nullptr;
    try {
      pg = new (mem) c10d::ProcessGroupGloo(store, rank, world, gloo_opts);
    } catch (...) {
      ::operator delete(mem);
      throw;
    }
    auto backend = c10::intrusive_ptr<c10d::Backend>::unsafe_steal_from_new(pg);
    out = new gm_pg{store, backend};
  });
  return out;
}

void gm_pg_free(gm_pg* pg) { delete pg; }

void gm_pg_free_message(char* s) { std::free(s); }

int gm_pg_all_reduce_sum(gm_pg* pg, at::Tensor* t, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> ts{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    pg->backend->allreduce(ts, o)->wait();
  });
}

int gm_pg_all_reduce_max(gm_pg* pg, at::Tensor* t, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> ts{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::MAX;
    pg->backend->allreduce(ts, o)->wait();
  });
}

int gm_pg_broadcast(gm_pg* pg, at::Tensor* t, int root, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    pg->backend->broadcast(ts, o)->wait();
  });
}

// out: a contiguous tensor of world * in.numel() elements; rank r's `in` lands in slice r.
int gm_pg_all_gather(gm_pg* pg, at::Tensor* out, at::Tensor* in, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> ins{*in};
    std::vector<std::vector<at::Tensor>> outs(1);
    const auto world = pg->backend->getSize();
    const auto n = in->numel();
    auto flat = out->view({-1});
    for (int r = 0; r < world; ++r) outs[0].push_back(flat.narrow(0, r * n, n).view(in->sizes()));
    pg->backend->allgather(outs, ins)->wait();
  });
}

int gm_pg_barrier(gm_pg* pg, char** err) {
  return guarded(err, [&] { pg->backend->barrier()->wait(); });
}

}  // extern "C"

// Table: aligned text columns for tunectl's table output.
//
//   Table table({"ID", "STATE", "COST"});
//   table.AlignRight(2);
//   table.AddRow({"1", "QUEUED", "$0.00"});
//   std::cout << table.Render();
//
// Columns are separated by two spaces and padded to their widest cell (counted in code
// points); a right-aligned column pads on the left. Lines carry no trailing blanks.
// Thread safety: a plain value; not safe to modify from two threads at once.
#ifndef TUNELEDGER_CLIENT_TABLE_H_
#define TUNELEDGER_CLIENT_TABLE_H_

#include <string>
#include <vector>

namespace tuneledger::client {

class Table {
 public:
  // An empty header row (no headers) renders only the rows: used for key/value listings.
  explicit Table(std::vector<std::string> headers);

  void AlignRight(size_t column);
  // Rows shorter than the widest row are padded with empty cells.
  void AddRow(std::vector<std::string> cells);
  size_t row_count() const { return rows_.size(); }

  // Every line ends in '\n' and starts with `indent` spaces.
  std::string Render(size_t indent = 0) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> right_aligned_;
};

}  // namespace tuneledger::client

#endif  // TUNELEDGER_CLIENT_TABLE_H_
